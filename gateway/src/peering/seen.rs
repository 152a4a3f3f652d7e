//! Duplicate suppression on peer links: a sliding window of the sequence numbers seen from
//! each origin, robust against forged or corrupt numbers.

/// Width of the duplicate-suppression window per origin, in messages.
pub(super) const WINDOW: u64 = 1 << 16;

/// Sliding window of seen sequence numbers of one origin.
#[derive(Debug, Default)]
pub(super) struct SeenWindow {
    /// One past the highest sequence number seen (0: none yet).
    top: u64,
    bits: Vec<u64>,
}

/// What a sequence number from a peer turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Not seen before: deliver it.
    New,
    /// Seen before, or too old to tell: drop it.
    Duplicate,
    /// Far behind everything seen from its origin: the window started over from it (a
    /// forged or corrupt number had pushed the window ahead); deliver it.
    Reset,
    /// No origin ever sends it (at or above [`MAX_SEQ`]): drop it.
    Invalid,
}

/// Sequence numbers start at 1 and grow by one per message an origin sends; no endpoint gets
/// anywhere near this, so a number at or above it is forged or corrupt.
const MAX_SEQ: u64 = 1 << 62;
/// A number this far behind the newest one of its origin cannot be a late message (that many
/// messages are never in flight): the window was pushed ahead by a forged number, and starts
/// over instead of dropping every later message of that origin.
const RESET_DISTANCE: u64 = 1 << 32;

impl SeenWindow {
    /// Marks `seq` seen.
    pub(super) fn insert(&mut self, seq: u64) -> Seen {
        if seq >= MAX_SEQ {
            return Seen::Invalid;
        }
        if self.bits.is_empty() {
            self.bits = vec![0; (WINDOW / 64) as usize];
        }
        let mut outcome = Seen::New;
        if self.top > RESET_DISTANCE && seq < self.top - RESET_DISTANCE {
            self.bits.fill(0);
            self.top = 0;
            outcome = Seen::Reset;
        }
        // top <= MAX_SEQ and seq < MAX_SEQ: nothing below overflows.
        if seq + WINDOW <= self.top {
            return Seen::Duplicate;
        }
        if seq >= self.top {
            // Slide: clear the slots between the old top and the new one.
            let advance = (seq + 1 - self.top).min(WINDOW);
            for s in self.top..self.top + advance {
                let i = (s % WINDOW) as usize;
                self.bits[i / 64] &= !(1 << (i % 64));
            }
            self.top = seq + 1;
        }
        let i = (seq % WINDOW) as usize;
        let mask = 1u64 << (i % 64);
        if self.bits[i / 64] & mask != 0 {
            return Seen::Duplicate;
        }
        self.bits[i / 64] |= mask;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_window_suppresses_duplicates_and_tolerates_reordering() {
        use Seen::*;
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(1), New);
        assert_eq!(w.insert(1), Duplicate);
        assert_eq!(w.insert(5), New);
        assert_eq!(w.insert(3), New, "late but within the window");
        assert_eq!(w.insert(3), Duplicate);
        assert_eq!(w.insert(WINDOW * 3), New);
        assert_eq!(w.insert(5), Duplicate, "too old to tell: treated as seen");
        assert_eq!(w.insert(WINDOW * 3 - 1), New);
        assert_eq!(w.insert(WINDOW * 3), Duplicate);
    }

    #[test]
    fn seen_window_survives_impossible_sequence_numbers() {
        use Seen::*;
        // Used to overflow (`seq + 1`, `seq + WINDOW`): a panic in debug builds.
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(u64::MAX), Invalid);
        assert_eq!(w.insert(u64::MAX - WINDOW + 1), Invalid);
        assert_eq!(w.insert(MAX_SEQ), Invalid);
        assert_eq!(w.insert(MAX_SEQ - 1), New, "the largest valid number");
        assert_eq!(w.insert(MAX_SEQ - 1), Duplicate);
        // A forged number far ahead used to make every later message of its origin "too
        // old"; now the honest stream starts the window over and keeps flowing.
        let mut w = SeenWindow::default();
        assert_eq!(w.insert(10), New);
        assert_eq!(w.insert(1 << 60), New);
        assert_eq!(w.insert(11), Reset);
        assert_eq!(w.insert(12), New);
        assert_eq!(w.insert(11), Duplicate);
        // A jump ahead of any size within the valid range is a normal gap.
        assert_eq!(w.insert(12 + RESET_DISTANCE * 2), New);
        assert_eq!(w.insert(13 + RESET_DISTANCE * 2), New);
    }
}
