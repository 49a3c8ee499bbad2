//! Delta debugging (ddmin, Zeller & Hildebrandt 2002): shortens a failing history to a 1-minimal one.
//!
//! Expand a failing seed into an explicit `Vec` of steps, make the harness replay any such `Vec`, and call
//! [`ddmin`] with a predicate that says whether a candidate still fails *the same way*.

/// What a shrink did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShrinkStats {
    /// Predicate calls.
    pub tests: u64,
}

/// A 1-minimal sub-sequence of `input` (order kept) for which `fails` is still true: removing any single
/// element of the result makes `fails` false. If `fails(input)` is false, `input` comes back unchanged.
pub fn ddmin<T: Clone>(input: &[T], fails: impl FnMut(&[T]) -> bool) -> Vec<T> {
    ddmin_with_stats(input, fails).0
}

/// [`ddmin`], also returning how many times the predicate ran.
pub fn ddmin_with_stats<T: Clone>(input: &[T], mut fails: impl FnMut(&[T]) -> bool) -> (Vec<T>, ShrinkStats) {
    let mut stats = ShrinkStats::default();
    let mut test = |candidate: &[T], stats: &mut ShrinkStats| {
        stats.tests += 1;
        fails(candidate)
    };
    if !test(input, &mut stats) {
        return (input.to_vec(), stats);
    }
    if test(&[], &mut stats) {
        return (Vec::new(), stats);
    }
    let mut current = input.to_vec();
    let mut n = 2usize;
    while current.len() >= 2 {
        let bounds = split(current.len(), n);
        let mut reduced = false;
        // Reduce to a subset.
        for &(start, end) in &bounds {
            if test(&current[start..end], &mut stats) {
                current = current[start..end].to_vec();
                n = 2;
                reduced = true;
                break;
            }
        }
        // Reduce to a complement.
        if !reduced && n > 2 {
            for &(start, end) in &bounds {
                let complement: Vec<T> = current[..start].iter().chain(&current[end..]).cloned().collect();
                if test(&complement, &mut stats) {
                    current = complement;
                    n = (n - 1).max(2);
                    reduced = true;
                    break;
                }
            }
        }
        if !reduced {
            if n >= current.len() {
                break;
            }
            n = (2 * n).min(current.len());
        }
    }
    (current, stats)
}

/// `len` split into `n` contiguous, nearly equal, non-empty parts, as `(start, end)`.
fn split(len: usize, n: usize) -> Vec<(usize, usize)> {
    let n = n.clamp(1, len.max(1));
    (0..n).map(|i| (i * len / n, (i + 1) * len / n)).filter(|(s, e)| s < e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_everything() {
        for len in 1..40 {
            for n in 1..=len {
                let parts = split(len, n);
                assert_eq!(parts.len(), n);
                assert_eq!(parts[0].0, 0);
                assert_eq!(parts[n - 1].1, len);
                assert!(parts.windows(2).all(|w| w[0].1 == w[1].0));
            }
        }
    }

    #[test]
    fn ddmin_shrinks_a_toy_failure_to_its_core() {
        let input: Vec<u32> = (0..200).collect();
        let (core, stats) = ddmin_with_stats(&input, |c| c.contains(&13) && c.contains(&42) && c.contains(&177));
        assert_eq!(core, [13, 42, 177]);
        assert!(stats.tests < 200, "{} tests", stats.tests);
        // A failure needing a total: the result is 1-minimal.
        let fails = |c: &[u32]| c.iter().filter(|x| *x % 7 == 0).sum::<u32>() >= 300;
        let core = ddmin(&input, fails);
        assert!(fails(&core));
        for i in 0..core.len() {
            let mut smaller = core.clone();
            smaller.remove(i);
            assert!(!fails(&smaller), "not 1-minimal: {core:?}");
        }
        assert_eq!(ddmin(&input, |_| false), input, "a passing input comes back unchanged");
        assert!(ddmin(&input, |_| true).is_empty());
    }
}
