//! Redis `SCAN MATCH` glob patterns (DB-19), for `directory` and the iterator.

/// Redis `SCAN MATCH` glob rules (DB-19) over bytes: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`
/// and `\` escaping the next character; the pattern matches the whole name.
pub fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < pattern.len() {
            if pattern[pi] == b'*' {
                star = Some((pi, si));
                pi += 1;
                continue;
            }
            if let Some(next) = match_one(pattern, pi, s[si]) {
                pi = next;
                si += 1;
                continue;
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while pi < pattern.len() && pattern[pi] == b'*' {
        pi += 1;
    }
    pi == pattern.len()
}

/// If the single-character token at `p[pi..]` matches `c`, the index after the token.
fn match_one(p: &[u8], pi: usize, c: u8) -> Option<usize> {
    match p[pi] {
        b'?' => Some(pi + 1),
        b'\\' if pi + 1 < p.len() => (p[pi + 1] == c).then_some(pi + 2),
        b'[' => {
            let mut i = pi + 1;
            let negate = i < p.len() && p[i] == b'^';
            if negate {
                i += 1;
            }
            let mut matched = false;
            while i < p.len() && p[i] != b']' {
                if p[i] == b'\\' && i + 1 < p.len() {
                    i += 1;
                    matched |= p[i] == c;
                } else if i + 2 < p.len() && p[i + 1] == b'-' {
                    let (mut lo, mut hi) = (p[i], p[i + 2]);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    matched |= (lo..=hi).contains(&c);
                    i += 2;
                } else {
                    matched |= p[i] == c;
                }
                i += 1;
            }
            let next = (i + 1).min(p.len());
            (matched != negate).then_some(next)
        }
        other => (other == c).then_some(pi + 1),
    }
}
