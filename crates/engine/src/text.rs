//! Turns generated token bytes into text deltas: holds back incomplete UTF-8 sequences and any tail that
//! could still become a stop sequence, and reports when a stop sequence appears.

/// Output of one [`TextStream::push`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// Text that is now final.
    pub text: String,
    /// A stop sequence appeared; `text` ends just before it and generation must end.
    pub stopped: bool,
}

/// Incremental detokenizer with stop-sequence detection.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    stop: Vec<String>,
    /// Bytes not yet forming complete UTF-8.
    pending: Vec<u8>,
    /// Decoded text not yet emitted (a possible stop-sequence prefix).
    held: String,
}

impl TextStream {
    /// A stream that stops before any of `stop` (empty strings are ignored).
    pub fn new(stop: &[String]) -> Self {
        Self { stop: stop.iter().filter(|s| !s.is_empty()).cloned().collect(), ..Self::default() }
    }

    /// Add one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Delta {
        self.pending.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // An invalid sequence (not just an unfinished one): decode lossily and move on.
            Err(_) => self.pending.len(),
        };
        let complete: Vec<u8> = self.pending.drain(..valid_up_to).collect();
        self.held.push_str(&String::from_utf8_lossy(&complete));

        if let Some(at) = self.stop.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            let text = self.held[..at].to_string();
            self.held.clear();
            self.pending.clear();
            return Delta { text, stopped: true };
        }
        let keep = self.longest_stop_prefix_suffix();
        let split = self.held.len() - keep;
        let text = self.held[..split].to_string();
        self.held.drain(..split);
        Delta { text, stopped: false }
    }

    /// Everything still held, at the end of generation.
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.pending)));
        text
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop sequence, kept on
    /// a char boundary.
    fn longest_stop_prefix_suffix(&self) -> usize {
        let mut best = 0;
        for stop in &self.stop {
            for len in (1..stop.len()).rev() {
                if len <= best || len > self.held.len() {
                    continue;
                }
                let start = self.held.len() - len;
                if self.held.is_char_boundary(start) && stop.starts_with(&self.held[start..]) {
                    best = len;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stop: &[&str], pieces: &[&[u8]]) -> (Vec<String>, bool, String) {
        let stop: Vec<String> = stop.iter().map(|s| (*s).to_string()).collect();
        let mut s = TextStream::new(&stop);
        let mut out = Vec::new();
        for p in pieces {
            let d = s.push(p);
            out.push(d.text);
            if d.stopped {
                return (out, true, String::new());
            }
        }
        (out, false, s.finish())
    }

    #[test]
    fn split_utf8_is_held_until_complete() {
        let e = "é".as_bytes();
        let (out, stopped, rest) = run(&[], &[b"caf", &e[..1], &e[1..]]);
        assert_eq!(out, vec!["caf", "", "é"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn stop_sequence_across_tokens_is_cut() {
        let (out, stopped, _) = run(&["END"], &[b"abc E", b"N", b"D more"]);
        assert_eq!(out.concat(), "abc ");
        assert!(stopped);
    }

    #[test]
    fn a_false_start_is_released() {
        let (out, stopped, rest) = run(&["END"], &[b"E", b"Nx", b"y"]);
        assert_eq!(out, vec!["", "ENx", "y"]);
        assert!(!stopped);
        assert_eq!(rest, "");
    }

    #[test]
    fn held_prefix_is_flushed_at_finish() {
        let (out, stopped, rest) = run(&["END"], &[b"xEN"]);
        assert_eq!(out, vec!["x"]);
        assert!(!stopped);
        assert_eq!(rest, "EN");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let (out, stopped, _) = run(&["b", "a"], &[b"xyab"]);
        assert_eq!(out, vec!["xy"]);
        assert!(stopped);
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let (out, _, _) = run(&[], &[&[0xff, b'a']]);
        assert_eq!(out, vec!["\u{fffd}a"]);
    }
}
