##! Sends a new WebSocket client of this Zeek node (e.g. a broker-gateway uplink) the
##! current content of the ``&publish_on_change`` tables and sets it subscribes to.
##!
##! Zeek publishes only the *changes* of such a table (the event
##! ``Cluster::table_change_infos`` on ``zeek/table/<id>/``), so a client that connects
##! later would never learn what the table held before. For each table named in
##! ``BrokerGateway::tables`` whose topic the new client subscribes to, this script
##! publishes the whole table with ``Cluster::publish_table`` (``TABLE_ELEMENT_NEW``
##! batches), then ``BrokerGateway::table_published(id)`` on the same topic: the snapshot
##! is complete.
##!
##! Use (Zeek 8.2 or later, on the node that serves the WebSocket API; with zeekctl, the
##! manager), e.g. in local.zeek:
##!
##!     @load ./broker-gateway.zeek
##!     redef BrokerGateway::tables += { "Test::endpoints" };
##!
##! The snapshot goes to the table's topic, so every subscriber of that topic gets it,
##! not only the new client: other clients and cluster nodes see ``TABLE_ELEMENT_NEW`` for
##! elements they have already, with their current values (a no-op for them).

module BrokerGateway;

export {
	## Global tables and sets (declared with ``&publish_on_change``) to send to new
	## WebSocket clients, by identifier, e.g. ``"Test::endpoints"``.
	option tables: set[string] = {} &redef;

	## Topics of tables whose ``&publish_on_change`` names another topic than the
	## default ``zeek/table/<id>/``: identifier -> topic.
	option topics: table[string] of string = {} &redef;

	## Published on a table's topic after its snapshot.
	##
	## id: The table's identifier.
	global table_published: event(id: string) &is_used;

	## The topic of the table ``id``.
	global table_topic: function(id: string): string;
}

function table_topic(id: string): string
	{
	if ( id in topics )
		return topics[id];

	return fmt("zeek/table/%s/", id);
	}

# Whether a client with these subscriptions (topic prefixes) receives ``topic``.
function subscribed(subscriptions: string_vec, topic: string): bool
	{
	for ( _, prefix in subscriptions )
		if ( starts_with(topic, prefix) )
			return T;

	return F;
	}

event Cluster::websocket_client_added(endpoint: Cluster::EndpointInfo, subscriptions: string_vec)
	{
	for ( id in tables )
		{
		local topic = table_topic(id);
		if ( ! subscribed(subscriptions, topic) )
			next;

		# lookup_ID() gives the string "<unknown id>" or "<no ID value>" if there is
		# no such global.
		local val = lookup_ID(id);
		if ( type_name(val) == "string" )
			{
			Reporter::warning(fmt("BrokerGateway: %s is not a global table or set", id));
			next;
			}

		# False (with an error from Zeek) for a non-table or a table without
		# &publish_on_change.
		if ( ! Cluster::publish_table(topic, val) )
			{
			Reporter::warning(fmt("BrokerGateway: cannot publish %s", id));
			next;
			}

		Cluster::publish(topic, table_published, id);
		}
	}
