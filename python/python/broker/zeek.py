"""Zeek events as Broker data: ``Event(name, *args)`` to publish, ``Event(data)`` to read one
that was received."""

import broker


class Event:
    def __init__(self, *args):
        if len(args) == 1 and not isinstance(args[0], str):
            data = tuple(args[0])
            if len(data) < 3 or data[0] != broker.Count(1) or data[1] != broker.Count(1):
                raise ValueError("not a Zeek event: [count 1, count 1, [name, args]] expected")
            content = data[2]
            self._name = content[0]
            self._args = tuple(content[1])
            self._metadata = tuple(content[2]) if len(content) > 2 else None
        else:
            self._name = args[0]
            self._args = tuple(args[1:])
            self._metadata = None

    def name(self):
        return self._name

    def args(self):
        """The arguments, as a list (as Broker gives them)."""
        return list(self._args)

    def metadata(self):
        return self._metadata

    def as_data(self):
        content = (self._name, self._args)
        if self._metadata is not None:
            content += (self._metadata,)
        return (broker.Count(1), broker.Count(1), content)

    def __repr__(self):
        return f"Event({self._name!r}, {', '.join(map(repr, self._args))})"
