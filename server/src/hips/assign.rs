//! Which tile of a catalogue HiPS each row goes to, computed partition by partition.
//!
//! **The rule** (the Hipsgen-cat one). Rows are taken in rank order (most important first);
//! each goes to the shallowest order k ≥ 1 whose tile containing it holds fewer rows than
//! [`quota`]`(k)`, and at the deepest order ([`max_order`]) whatever the quota. Each row is
//! therefore in exactly one tile.
//!
//! **Why it can be computed per HATS partition.** Applied literally the rule is one sequential
//! pass over the whole catalogue in rank order, with a counter per tile: for 100 million rows
//! that is a global sort and a hash map of millions of tiles. But a row can only be placed at
//! an order k if fewer than `Q(k) = quota(1) + … + quota(k)` rows of its order-k cell rank
//! above it: each of those either was placed at an order j < k — at most `quota(j)` of them
//! per order, since they share the order-j tile — or tried order k, and `quota(k)` of them
//! fill it. For a partition of order p, a row's order-k cell (k < p) contains the whole
//! partition, so only the partition's `Q(p − 1)` best rows can ever be placed above order p.
//! Those *candidates* of all partitions, a few hundred per partition, are placed by the literal
//! rule at the orders above their partitions ([`place_upper`]); tiles at orders k < p only
//! ever receive candidates, since a partition of order ≤ k containing a cell would make the
//! cell local to it. Then every partition places its remaining rows at its own order and
//! deeper, alone ([`place_local`]): those tiles lie inside it. The result is exactly the
//! literal rule's (checked against it on random catalogues in the tests below).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A multiplicative hasher for the tile counters, whose keys are NUNIQ values: `std`'s
/// SipHash was a tenth of a 100-million-row build, and the keys need no DoS resistance (they
/// come from the catalogue, not from requests).
#[derive(Debug, Default, Clone, Copy)]
struct NuniqHasher(u64);

impl Hasher for NuniqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Rows counted per tile, by NUNIQ.
type Counts = HashMap<u64, u32, BuildHasherDefault<NuniqHasher>>;

fn nuniq(k: u8, h: u64) -> u64 {
    (4u64 << (2 * u32::from(k))) + cell(h, k)
}

/// The deepest order used when every partition is shallower: rows still unplaced when every
/// tile above is full all go there.
pub(crate) const MAX_ORDER: u8 = 11;

/// The deepest order of a catalogue whose deepest partition has order `deepest_partition`:
/// [`MAX_ORDER`], or deeper so that every partition's own cell is a tile order.
pub(crate) fn max_order(deepest_partition: u8) -> u8 {
    MAX_ORDER.max(deepest_partition)
}

/// Rows a tile at `order` holds at most (except at the deepest order): 60 per order-1 tile and
/// 45 per order-2 tile (at most 2,880 and 8,640 rows in `Norder1/Allsky.tsv` and
/// `Norder2/Allsky.tsv`, the n1 ≈ 3000, n2 ≈ 3·n1 of the CDS scheme), 100 per tile deeper.
pub(crate) fn quota(order: u8) -> u32 {
    match order {
        0 => 0,
        1 => 60,
        2 => 45,
        _ => 100,
    }
}

/// `quota(1) + … + quota(order)`.
pub(crate) fn cumulative_quota(order: u8) -> usize {
    (1..=order).map(|k| quota(k) as usize).sum()
}

/// The order-`order` cell of a `_healpix_29` index.
pub(crate) fn cell(h: u64, order: u8) -> u64 {
    h >> (2 * (29 - u32::from(order)))
}

/// Stable pseudo-random mixing of a `_healpix_29` index (ties of the ranking column, and the
/// whole order when a catalogue has none).
pub(crate) fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A row's place in the global rank order: ranking value (smaller first; NaN and NULL are
/// given +∞ by the caller), then a hash of its position, its position, its partition and its
/// row in the partition, so that the order is total and the same in every pass.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RankKey {
    pub(crate) key: f64,
    pub(crate) h: u64,
    pub(crate) part: u32,
    pub(crate) row: u32,
}

impl RankKey {
    pub(crate) fn cmp(&self, o: &RankKey) -> Ordering {
        self.key
            .total_cmp(&o.key)
            .then_with(|| splitmix(self.h).cmp(&splitmix(o.h)))
            .then_with(|| self.h.cmp(&o.h))
            .then_with(|| self.part.cmp(&o.part))
            .then_with(|| self.row.cmp(&o.row))
    }
}

/// `f64::total_cmp` order as unsigned integers.
fn ordered_bits(x: f64) -> u64 {
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

/// The rows of one partition in rank order (indexes into `hpx`/`key`): the order of
/// [`RankKey::cmp`] within one partition, sorted on precomputed integer tuples.
pub(crate) fn local_order(hpx: &[u64], key: &[f64]) -> Vec<u32> {
    let mut keyed: Vec<(u64, u64, u64, u32)> = hpx
        .iter()
        .zip(key)
        .enumerate()
        .map(|(i, (&h, &k))| (ordered_bits(k), splitmix(h), h, i as u32))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(|t| t.3).collect()
}

/// The rows of partition `part` (of order `order`) that may be placed above it: its
/// `Q(order − 1)` best.
pub(crate) fn candidates(
    order: u8,
    part: u32,
    hpx: &[u64],
    key: &[f64],
    local: &[u32],
) -> Vec<RankKey> {
    local
        .iter()
        .take(cumulative_quota(order.saturating_sub(1)))
        .map(|&r| RankKey {
            key: key[r as usize],
            h: hpx[r as usize],
            part,
            row: r,
        })
        .collect()
}

/// Places the candidates of all partitions at the orders above their partitions
/// (`part_order[c.part]`), by the literal rule; returns the placed ones with their order.
pub(crate) fn place_upper(mut cands: Vec<RankKey>, part_order: &[u8]) -> Vec<(RankKey, u8)> {
    cands.sort_unstable_by(RankKey::cmp);
    let mut counts = Counts::default();
    let mut placed = Vec::new();
    for c in cands {
        let p = part_order[c.part as usize];
        for k in 1..p {
            let n = counts.entry(nuniq(k, c.h)).or_insert(0);
            if *n < quota(k) {
                *n += 1;
                placed.push((c, k));
                break;
            }
        }
    }
    placed
}

/// The order of every row of a partition of order `order`: `upper[r]` for the rows placed
/// above it (non-zero), else the shallowest order from `max(order, 1)` to `deepest` with room
/// in rank order (`local`).
pub(crate) fn place_local(
    order: u8,
    deepest: u8,
    hpx: &[u64],
    local: &[u32],
    mut upper: Vec<u8>,
) -> Vec<u8> {
    let mut counts = Counts::default();
    for &r in local {
        let r = r as usize;
        if upper[r] != 0 {
            continue;
        }
        for k in order.max(1)..=deepest {
            let n = counts.entry(nuniq(k, hpx[r])).or_insert(0);
            if *n < quota(k) || k == deepest {
                *n += 1;
                upper[r] = k;
                break;
            }
        }
    }
    upper
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The literal rule over the whole catalogue.
    fn literal(rows: &[RankKey], deepest: u8) -> HashMap<(u32, u32), u8> {
        let mut sorted = rows.to_vec();
        sorted.sort_unstable_by(RankKey::cmp);
        let mut counts: HashMap<(u8, u64), u32> = HashMap::new();
        let mut out = HashMap::new();
        for r in sorted {
            for k in 1..=deepest {
                let n = counts.entry((k, cell(r.h, k))).or_insert(0);
                if *n < quota(k) || k == deepest {
                    *n += 1;
                    out.insert((r.part, r.row), k);
                    break;
                }
            }
        }
        out
    }

    /// Adaptive partitions as the loader makes them: a cell with more than `threshold` rows
    /// is split, down to `highest`.
    fn partition(hpx: &[u64], threshold: usize, highest: u8) -> Vec<(u8, u64)> {
        fn split(
            hpx: &[u64],
            k: u8,
            n: u64,
            threshold: usize,
            highest: u8,
            out: &mut Vec<(u8, u64)>,
        ) {
            let inside: Vec<u64> = hpx.iter().copied().filter(|&h| cell(h, k) == n).collect();
            if inside.is_empty() {
                return;
            }
            if inside.len() <= threshold || k == highest {
                out.push((k, n));
                return;
            }
            for c in 0..4 {
                split(&inside, k + 1, n * 4 + c, threshold, highest, out);
            }
        }
        let mut out = Vec::new();
        for n in 0..12 {
            split(hpx, 0, n, threshold, highest, &mut out);
        }
        out
    }

    fn check(hpx: Vec<u64>, key: Vec<f64>, threshold: usize, highest: u8) {
        let parts = partition(&hpx, threshold, highest);
        let part_order: Vec<u8> = parts.iter().map(|&(k, _)| k).collect();
        let deepest = max_order(part_order.iter().copied().max().unwrap_or(0));
        // Rows of each partition, in input order.
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); parts.len()];
        for (i, &h) in hpx.iter().enumerate() {
            let p = parts
                .iter()
                .position(|&(k, n)| cell(h, k) == n)
                .expect("every row is in a partition");
            members[p].push(i);
        }
        let mut all = Vec::new();
        let mut cands = Vec::new();
        let mut locals = Vec::new();
        for (p, m) in members.iter().enumerate() {
            let ph: Vec<u64> = m.iter().map(|&i| hpx[i]).collect();
            let pk: Vec<f64> = m.iter().map(|&i| key[i]).collect();
            for (r, (&h, &k)) in ph.iter().zip(&pk).enumerate() {
                all.push(RankKey {
                    key: k,
                    h,
                    part: p as u32,
                    row: r as u32,
                });
            }
            let local = local_order(&ph, &pk);
            cands.extend(candidates(part_order[p], p as u32, &ph, &pk, &local));
            locals.push((ph, local));
        }
        let want = literal(&all, deepest);
        let placed = place_upper(cands, &part_order);
        let mut got = HashMap::new();
        for (p, (ph, local)) in locals.iter().enumerate() {
            let mut upper = vec![0u8; ph.len()];
            for (c, k) in &placed {
                if c.part as usize == p {
                    upper[c.row as usize] = *k;
                }
            }
            let levels = place_local(part_order[p], deepest, ph, local, upper);
            for (r, &k) in levels.iter().enumerate() {
                got.insert((p as u32, r as u32), k);
            }
        }
        assert_eq!(got.len(), want.len());
        let differ = want.iter().filter(|(r, k)| got.get(r) != Some(k)).count();
        assert_eq!(differ, 0, "{differ} rows placed differently");
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed = splitmix(*seed);
        *seed
    }

    #[test]
    fn per_partition_equals_the_literal_rule() {
        for (seed0, n, threshold) in [(1u64, 20_000, 600), (2, 60_000, 2_000), (3, 5_000, 50)] {
            let mut s = seed0;
            let mut hpx = Vec::new();
            let mut key = Vec::new();
            for i in 0..n {
                // A dense clump (one order-4 cell), a band, and a uniform background.
                let h = match i % 3 {
                    0 => (1234u64 << 50) | (rng(&mut s) >> 14),
                    1 => ((4 + rng(&mut s) % 4) << 56) | (rng(&mut s) >> 8),
                    _ => rng(&mut s) % (12 << 58),
                };
                hpx.push(h);
                key.push(match rng(&mut s) % 10 {
                    0 => f64::INFINITY,
                    1 => 12.5, // ties
                    _ => (rng(&mut s) % 20_000) as f64 / 1000.0,
                });
            }
            check(hpx, key, threshold, 13);
        }
    }

    #[test]
    fn partitions_deeper_than_the_default_deepest_order() {
        let mut s = 9u64;
        let hpx: Vec<u64> = (0..4_000)
            .map(|_| (77u64 << (2 * (29 - 12))) | (rng(&mut s) >> (64 - 2 * (29 - 12))))
            .collect();
        let key = vec![0.0; hpx.len()];
        check(hpx, key, 20, 14);
    }

    #[test]
    fn quotas() {
        assert_eq!(quota(1) * 48, 2880);
        assert_eq!(quota(2) * 192, 8640);
        assert_eq!(quota(5), 100);
        assert_eq!(cumulative_quota(0), 0);
        assert_eq!(cumulative_quota(3), 205);
    }
}
