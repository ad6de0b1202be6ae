//! The merge policy (pure): which sealed segments a collection rewrites together, so that a
//! large collection is searched through a few large graphs rather than one graph per
//! sealed segment, and tombstones do not pile up.
//!
//! Size tiers, as in an LSM tree or Qdrant's merge optimizer: a segment's tier is
//! `floor(log_factor(live / base))` (tier 0 below `base × factor` live points, small
//! segments sealed when idle included). When a tier holds `factor` segments, its smallest
//! `factor` are merged into one segment of the next tier, unless the result would exceed
//! `max_points`. Each point is therefore rewritten about `log_factor(n / base)` times, and
//! a collection of `n` points keeps fewer than `factor` segments per tier: with the defaults
//! (base 20,000, factor 4, at most 1,000,000 points per segment) a million points sit in at
//! most 3 segments of each of tiers 0, 1 and 2, usually fewer. A segment whose tombstones
//! exceed `tombstone_ratio` of its slots is rewritten even alone.
//!
//! A collection without writes for `quiet_after` (its size no longer changing) has its
//! smallest segments merged into one as long as the result stays under `max_points`: a
//! million points written once end in one graph, searched once per query, not three.
//!
//! [`crate::collection::Collection::compact`] applies one plan at a time, off the state lock,
//! and swaps the result in.

/// What the policy reads of a sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentShape {
    pub id: u64,
    /// Slots, live or tombstoned.
    pub slots: usize,
    pub live: usize,
}

impl SegmentShape {
    fn tombstones(&self) -> usize {
        self.slots - self.live
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergePolicy {
    /// Live points of a tier-0 segment at most (the size a segment is sealed at).
    pub base_points: usize,
    /// Segments of one tier merged together (at least 2).
    pub factor: usize,
    /// No merge produces a segment of more live points than this.
    pub max_points: usize,
    /// A segment with more than this share of tombstones is rewritten.
    pub tombstone_ratio: f64,
    /// A collection without writes this long merges its smallest segments up to
    /// `max_points` (`None`: never; the caller decides and passes `quiet` to [`plan`]).
    pub quiet_after: Option<std::time::Duration>,
}

impl Default for MergePolicy {
    fn default() -> Self {
        MergePolicy {
            base_points: 20_000,
            factor: 4,
            max_points: 1_000_000,
            tombstone_ratio: 0.2,
            quiet_after: Some(std::time::Duration::from_secs(30)),
        }
    }
}

impl MergePolicy {
    /// The size tier of a segment with `live` points.
    pub fn tier(&self, live: usize) -> u32 {
        let f = self.factor.max(2);
        let mut bound = self.base_points.max(1).saturating_mul(f);
        let mut t = 0;
        while live >= bound && bound < usize::MAX {
            t += 1;
            bound = bound.saturating_mul(f);
        }
        t
    }
}

/// The next rewrite: the segments to merge into one (sorted by id), or empty when there is
/// nothing to do. Segments still waiting for their first graph are not passed in. `quiet`:
/// the collection had no write for `quiet_after`.
pub fn plan(segments: &[SegmentShape], p: &MergePolicy, quiet: bool) -> Vec<u64> {
    let f = p.factor.max(2);
    let mut by_tier: std::collections::BTreeMap<u32, Vec<SegmentShape>> = Default::default();
    for s in segments.iter().filter(|s| s.live > 0) {
        by_tier.entry(p.tier(s.live)).or_default().push(*s);
    }
    // The lowest tier with `factor` segments whose smallest `factor` fit under the cap.
    for group in by_tier.values_mut() {
        if group.len() < f {
            continue;
        }
        group.sort_by_key(|s| (s.live, s.id));
        let take = &group[..f];
        if take.iter().map(|s| s.live).sum::<usize>() <= p.max_points {
            let mut ids: Vec<u64> = take.iter().map(|s| s.id).collect();
            ids.sort_unstable();
            return ids;
        }
    }
    // Tombstones: the segment with the most, when above the ratio (fully dead ones too).
    let worst = segments
        .iter()
        .filter(|s| {
            s.tombstones() > 0 && s.tombstones() as f64 > p.tombstone_ratio * s.slots as f64
        })
        .max_by_key(|s| (s.tombstones(), std::cmp::Reverse(s.id)));
    if let Some(s) = worst {
        return vec![s.id];
    }
    if quiet {
        quiet_merge(segments, p)
    } else {
        Vec::new()
    }
}

/// A quiet collection's smallest live segments that fit together under the cap (at least
/// two, or none).
fn quiet_merge(segments: &[SegmentShape], p: &MergePolicy) -> Vec<u64> {
    let mut live: Vec<&SegmentShape> = segments.iter().filter(|s| s.live > 0).collect();
    live.sort_by_key(|s| (s.live, s.id));
    let mut total = 0;
    let mut ids: Vec<u64> = Vec::new();
    for s in live {
        if total + s.live > p.max_points {
            break;
        }
        total += s.live;
        ids.push(s.id);
    }
    if ids.len() < 2 {
        return Vec::new();
    }
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, live: usize) -> SegmentShape {
        SegmentShape {
            id,
            slots: live,
            live,
        }
    }

    #[test]
    fn tiers_grow_by_the_factor() {
        let p = MergePolicy::default();
        assert_eq!(p.tier(0), 0);
        assert_eq!(p.tier(1_000), 0);
        assert_eq!(p.tier(79_999), 0);
        assert_eq!(p.tier(80_000), 1);
        assert_eq!(p.tier(319_999), 1);
        assert_eq!(p.tier(320_000), 2);
        assert_eq!(p.tier(usize::MAX), p.tier(usize::MAX - 1));
    }

    #[test]
    fn nothing_below_the_factor() {
        let p = MergePolicy::default();
        assert!(plan(&[], &p, false).is_empty());
        let three: Vec<_> = (1..=3).map(|i| seg(i, 20_000)).collect();
        assert!(plan(&three, &p, false).is_empty());
    }

    #[test]
    fn merges_the_smallest_of_the_lowest_full_tier() {
        let p = MergePolicy::default();
        let mut s: Vec<_> = (1..=5).map(|i| seg(i, 20_000 - i as usize)).collect();
        s.push(seg(9, 500)); // sealed when idle: tier 0 too
        // Four tier-1 segments as well: the lower tier goes first.
        s.extend((10..14).map(|i| seg(i, 100_000)));
        assert_eq!(plan(&s, &p, false), vec![3, 4, 5, 9]);
    }

    #[test]
    fn a_full_tier_over_the_cap_is_left_alone() {
        let p = MergePolicy::default();
        // Four tier-1 segments of 300k: 1.2M points would exceed the 1M cap.
        let s: Vec<_> = (1..=4).map(|i| seg(i, 300_000)).collect();
        assert!(plan(&s, &p, false).is_empty());
        let s: Vec<_> = (1..=4).map(|i| seg(i, 200_000)).collect();
        assert_eq!(plan(&s, &p, false), vec![1, 2, 3, 4]);
    }

    #[test]
    fn tombstones_alone_trigger_a_rewrite() {
        let p = MergePolicy::default();
        let mut s = vec![seg(1, 20_000)];
        s.push(SegmentShape {
            id: 3,
            slots: 20_000,
            live: 15_000,
        });
        s.push(SegmentShape {
            id: 4,
            slots: 20_000,
            live: 19_000,
        });
        assert_eq!(plan(&s, &p, false), vec![3]);
        // A segment whose points are all deleted is rewritten (into nothing).
        let dead = [SegmentShape {
            id: 7,
            slots: 10,
            live: 0,
        }];
        assert_eq!(plan(&dead, &p, false), vec![7]);
    }

    /// Merging as planned until nothing is left to do: every point is rewritten about
    /// log_factor(n / base) times, and few segments remain per tier.
    #[test]
    fn a_million_points_end_in_a_few_segments() {
        let p = MergePolicy::default();
        let mut segs: Vec<SegmentShape> = Vec::new();
        let mut next = 1;
        let mut rewritten = 0usize;
        for _ in 0..50 {
            segs.push(seg(next, 20_000));
            next += 1;
            loop {
                let ids = plan(&segs, &p, false);
                if ids.is_empty() {
                    break;
                }
                let live: usize = segs
                    .iter()
                    .filter(|s| ids.contains(&s.id))
                    .map(|s| s.live)
                    .sum();
                segs.retain(|s| !ids.contains(&s.id));
                segs.push(seg(next, live));
                next += 1;
                rewritten += live;
            }
        }
        let total: usize = segs.iter().map(|s| s.live).sum();
        assert_eq!(total, 1_000_000);
        assert!(segs.len() <= 8, "{segs:?}");
        for t in 0..3 {
            assert!(segs.iter().filter(|s| p.tier(s.live) == t).count() < p.factor);
        }
        assert!(segs.iter().all(|s| s.live <= p.max_points));
        // log4(50) ≈ 2.8 rewrites per point at most.
        assert!(rewritten <= 3 * total, "{rewritten}");
    }

    /// A quiet collection merges its smallest segments up to the cap: the million points
    /// above end in one segment; a collection over the cap keeps its full ones.
    #[test]
    fn a_quiet_collection_merges_its_smallest_segments_up_to_the_cap() {
        let p = MergePolicy::default();
        let tiers = [
            seg(1, 320_000),
            seg(2, 320_000),
            seg(3, 320_000),
            seg(4, 20_000),
            seg(5, 20_000),
        ];
        assert!(plan(&tiers, &p, false).is_empty());
        assert_eq!(plan(&tiers, &p, true), vec![1, 2, 3, 4, 5]);
        let big = [
            seg(1, 900_000),
            seg(2, 1_000_000),
            seg(3, 60_000),
            seg(4, 30_000),
        ];
        assert_eq!(plan(&big, &p, true), vec![1, 3, 4]);
        // After that merge, nothing else fits under the cap.
        let after = [seg(2, 1_000_000), seg(5, 990_000)];
        assert!(plan(&after, &p, true).is_empty());
        // One segment, or only empty ones besides it: nothing to merge.
        assert!(plan(&[seg(1, 5)], &p, true).is_empty());
        let mut empty = seg(2, 0);
        empty.slots = 0;
        assert!(plan(&[seg(1, 5), empty], &p, true).is_empty());
        // Tiers and tombstones come first.
        let mut dead = seg(9, 10);
        dead.slots = 100;
        assert_eq!(plan(&[seg(1, 5), seg(2, 5), dead], &p, true), vec![9]);
    }
}
