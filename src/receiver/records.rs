//! Counting a push's records while its body arrives, so a push over `--webhook.max-records` is refused
//! before it is decoded (a decoded record costs about 144 bytes however small its text: `1,` is two).

/// Counts the elements of a top-level JSON array chunk by chunk, without decoding them: the commas at
/// depth 1 outside strings. It reads any bytes; a body that is not JSON is refused later by the decoder.
#[derive(Debug, Default)]
pub(super) struct RecordCounter {
    /// The first byte that is not white space: `[` for a list, `{` for one event.
    top: Option<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    commas: u64,
    /// Whether the list has anything in it yet (`[]` has no record, `[1]` one).
    any: bool,
}

impl RecordCounter {
    /// Reads the next bytes of the body.
    pub(super) fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.in_string {
                match b {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            if matches!(b, b' ' | b'\n' | b'\t' | b'\r') {
                continue;
            }
            if self.top.is_none() {
                self.top = Some(b);
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => self.depth = self.depth.saturating_add(1),
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b',' if self.depth == 1 => self.commas += 1,
                _ => {}
            }
            if self.depth >= 1 && !matches!(b, b'[' | b']' | b',') || self.depth >= 2 {
                self.any = true;
            }
        }
    }

    /// Records seen so far: at least as many as the decoder will find in a well-formed body.
    pub(super) fn records(&self) -> u64 {
        match self.top {
            Some(b'[') => self.commas + u64::from(self.any || self.commas > 0),
            Some(_) => 1,
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RecordCounter;

    fn count(chunks: &[&str]) -> u64 {
        let mut counter = RecordCounter::default();
        for chunk in chunks {
            counter.feed(chunk.as_bytes());
        }
        counter.records()
    }

    #[test]
    fn counts_top_level_elements_across_chunk_boundaries() {
        assert_eq!(count(&["[]"]), 0);
        assert_eq!(count(&[" [ ] "]), 0);
        assert_eq!(count(&["[1]"]), 1);
        assert_eq!(count(&["[1,2", ",3]"]), 3);
        assert_eq!(count(&[r#"{"id":1,"a":[1,2,3]}"#]), 1);
        assert_eq!(count(&[r#"[{"id":1,"a":[1,2]},{"id":"x,y"}]"#]), 2);
        // Commas inside strings, escaped quotes and nesting are not records.
        assert_eq!(count(&[r#"["a,b\",c", "\\", "#, r#"{"k":"]"}]"#]), 3);
        assert_eq!(count(&["[[],[", "],{}]"]), 3);
    }

    /// The decoder never finds more records than the counter did, whatever the body.
    #[test]
    fn never_counts_fewer_than_the_decoder_reads() {
        let bodies = [
            r#"[1,2,3,{"id":5,"event_type":{"id":3}},"x",null,[1,[2]]]"#,
            r#"[{"id":1,"event_type":{"id":3},"description":"a,\"b\"]"}]"#,
            r#"{"id":1,"event_type":{"id":3}}"#,
            "[]",
        ];
        for body in bodies {
            let decoded = crate::emnify::decode_event_object_or_list(body.as_bytes()).unwrap().len() as u64;
            for cut in 0..=body.len() {
                let (a, b) = body.split_at(cut);
                assert_eq!(count(&[a, b]), decoded, "{body} cut at {cut}");
            }
        }
    }
}
