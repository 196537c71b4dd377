//! The partition planner: from a HEALPix histogram at the mapping order to the set of
//! partitions, by the rules hats-import 0.11 uses (`generate_alignment`).

use tessera_storage::{Pixel, Skymap};

use crate::error::{Error, Result};

/// Planner settings.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// Maximum rows per partition (`pixel_threshold`).
    pub threshold: u64,
    /// Shallowest partition order (`lowest_healpix_order`).
    pub lowest_order: u8,
    /// When set, apply hats-import's `drop_empty_siblings=True` rule (its default): a cell
    /// absorbs its subtree only when more than one child is non-empty. Otherwise take the
    /// first ancestor, top-down, whose count fits.
    pub drop_empty_siblings: bool,
}

/// Chooses the partitions for `histogram` (counts at the mapping order). Returns them in curve
/// order. Fails when a single mapping-order cell holds more rows than the threshold, as
/// hats-import does.
pub fn plan_partitions(histogram: &Skymap, s: &PlanSettings) -> Result<Vec<Pixel>> {
    let k = histogram.order;
    let lowest = s.lowest_order.min(k);
    if let Some((i, c)) = histogram
        .counts
        .iter()
        .enumerate()
        .find(|(_, c)| **c > s.threshold)
    {
        return Err(Error::Usage(format!(
            "HEALPix cell ({k}, {i}) alone holds {c} rows, more than the partition threshold {}; \
             raise --highest-order or --pixel-threshold",
            s.threshold
        )));
    }
    // Counts at every order from lowest..=k.
    let mut levels: Vec<Vec<u64>> = vec![Vec::new(); k as usize + 1];
    levels[k as usize] = histogram.counts.clone();
    for o in (lowest..k).rev() {
        let finer = &levels[o as usize + 1];
        levels[o as usize] = finer.chunks(4).map(|c| c.iter().sum()).collect();
    }
    let mut out = Vec::new();
    if s.drop_empty_siblings {
        // assigned[o][n] = true when cell (o, n) is a partition. Bottom-up: start with every
        // non-empty mapping cell, let parents absorb where allowed.
        // Represent the assignment as the order at which each mapping cell's partition sits.
        let mut part_order: Vec<u8> = vec![k; histogram.counts.len()];
        for o in (lowest..k).rev() {
            let counts = &levels[o as usize];
            let finer = &levels[o as usize + 1];
            let span = 1usize << (2 * (k - o) as u32);
            for (n, &sum) in counts.iter().enumerate() {
                if sum == 0 || sum > s.threshold {
                    continue;
                }
                let max = finer[4 * n..4 * n + 4].iter().copied().max().unwrap_or(0);
                if sum != max {
                    part_order[n * span..(n + 1) * span].fill(o);
                }
            }
        }
        let mut i = 0usize;
        while i < histogram.counts.len() {
            let o = part_order[i];
            let span = 1usize << (2 * (k - o) as u32);
            let n = i / span;
            if levels[o as usize][n] > 0 {
                out.push(Pixel {
                    order: o,
                    npix: n as u64,
                });
            }
            i = (n + 1) * span;
        }
    } else {
        fn descend(levels: &[Vec<u64>], k: u8, o: u8, n: usize, t: u64, out: &mut Vec<Pixel>) {
            let c = levels[o as usize][n];
            if c == 0 {
                return;
            }
            if c <= t || o == k {
                out.push(Pixel {
                    order: o,
                    npix: n as u64,
                });
                return;
            }
            for child in 4 * n..4 * n + 4 {
                descend(levels, k, o + 1, child, t, out);
            }
        }
        for n in 0..levels[lowest as usize].len() {
            descend(&levels, k, lowest, n, s.threshold, &mut out);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(t: u64, drop: bool) -> PlanSettings {
        PlanSettings {
            threshold: t,
            lowest_order: 0,
            drop_empty_siblings: drop,
        }
    }

    #[test]
    fn partitions_cover_every_row_without_overlap() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut h = Skymap::zeros(5);
        for c in h.counts.iter_mut() {
            if rng.random::<f64>() < 0.3 {
                *c = rng.random_range(0..40);
            }
        }
        // A dense clump.
        for c in &mut h.counts[4000..4064] {
            *c = 90;
        }
        for drop in [true, false] {
            let parts = plan_partitions(&h, &settings(500, drop)).unwrap();
            let mut covered = 0u64;
            for w in parts.windows(2) {
                assert!(w[0].range29().end <= w[1].range29().start);
            }
            for p in &parts {
                let shift = 2 * (5 - p.order) as u32;
                let n: u64 = h.counts[(p.npix << shift) as usize..((p.npix + 1) << shift) as usize]
                    .iter()
                    .sum();
                assert!(n > 0 && n <= 500, "{p}: {n}");
                covered += n;
            }
            assert_eq!(covered, h.total());
        }
    }

    #[test]
    fn isolated_clump_keeps_a_deep_pixel_with_drop_empty_siblings() {
        // One non-empty order-3 cell: with drop_empty_siblings its ancestors all have a single
        // non-empty child, so it stays at order 3; without, it rises to order 0.
        let mut h = Skymap::zeros(3);
        h.counts[200] = 10;
        let p = plan_partitions(&h, &settings(100, true)).unwrap();
        assert_eq!(
            p,
            vec![Pixel {
                order: 3,
                npix: 200
            }]
        );
        let p = plan_partitions(&h, &settings(100, false)).unwrap();
        assert_eq!(
            p,
            vec![Pixel {
                order: 0,
                npix: 200 >> 6
            }]
        );
        // A sibling appears: their parent absorbs both, but no higher (its own siblings are
        // empty).
        h.counts[201] = 5;
        let p = plan_partitions(&h, &settings(100, true)).unwrap();
        assert_eq!(p, vec![Pixel { order: 2, npix: 50 }]);
    }

    #[test]
    fn single_cell_over_threshold_is_an_error() {
        let mut h = Skymap::zeros(2);
        h.counts[3] = 1000;
        let e = plan_partitions(&h, &settings(999, true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(2, 3)") && e.contains("--highest-order"), "{e}");
    }
}
