//! Percentile-bootstrap intervals over tasks, shared by run summaries and
//! `crucible analyze`: many columns (one per strategy or rule and n) of
//! per-task values, resampled together so that intervals are comparable.

use rand::RngExt;

/// Percentile-bootstrap intervals for the column means of a row-major
/// `rows × cols` table: `replicates` resamples of the rows with replacement.
/// Empty when `replicates` is 0.
pub fn intervals(
    table: &[f32],
    rows: usize,
    cols: usize,
    replicates: usize,
    confidence: f64,
    rng: &mut impl RngExt,
) -> Vec<(f64, f64)> {
    if replicates == 0 || rows == 0 {
        return Vec::new();
    }
    // A column equal on every row has every resample's mean equal to it
    // (saturated curves: pass@k at large n); only the others are resampled.
    let varying: Vec<usize> = (0..cols)
        .filter(|&c| (1..rows).any(|r| table[r * cols + c] != table[c]))
        .collect();
    let mut out: Vec<(f64, f64)> = (0..cols)
        .map(|c| (f64::from(table[c]), f64::from(table[c])))
        .collect();
    let draws = draws(rows, replicates, rng);
    if varying.len() == cols {
        return resample(table, rows, cols, &draws, confidence);
    }
    let compact: Vec<f32> = (0..rows)
        .flat_map(|r| varying.iter().map(move |&c| table[r * cols + c]))
        .collect();
    let found = resample(&compact, rows, varying.len(), &draws, confidence);
    for (&c, interval) in varying.iter().zip(found) {
        out[c] = interval;
    }
    out
}

/// Columns summed together by one thread.
const BLOCK: usize = 32;

/// Each replicate as (row, times drawn) for the rows it draws at all.
fn draws(rows: usize, replicates: usize, rng: &mut impl RngExt) -> Vec<Vec<(u32, f32)>> {
    (0..replicates)
        .map(|_| {
            let mut times = vec![0u32; rows];
            for _ in 0..rows {
                times[rng.random_range(0..rows)] += 1;
            }
            times
                .iter()
                .enumerate()
                .filter(|(_, t)| **t > 0)
                .map(|(r, &t)| (r as u32, t as f32))
                .collect()
        })
        .collect()
}

/// Intervals of every column of a row-major `rows × cols` table under `draws`.
fn resample(
    table: &[f32],
    rows: usize,
    cols: usize,
    draws: &[Vec<(u32, f32)>],
    confidence: f64,
) -> Vec<(f64, f64)> {
    let replicates = draws.len();
    if cols == 0 {
        return Vec::new();
    }
    // Columns in blocks small enough that a block of the table stays in cache
    // while every replicate sums it; blocks go to threads in turn.
    let blocks: Vec<usize> = (0..cols).step_by(BLOCK).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(blocks.len());
    let mut out = vec![(0.0, 0.0); cols];
    let tail = (1.0 - confidence) / 2.0;
    // Per thread: (first column of a block, the block's intervals).
    type Blocks = Vec<(usize, Vec<(f64, f64)>)>;
    let results: Vec<Blocks> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let blocks = &blocks;
                let draws = &draws;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    let mut means = Vec::new();
                    for &start in blocks.iter().skip(t).step_by(threads) {
                        let width = BLOCK.min(cols - start);
                        means.clear();
                        means.resize(replicates * width, 0f32);
                        for (b, draw) in draws.iter().enumerate() {
                            let acc = &mut means[b * width..(b + 1) * width];
                            for &(r, times) in draw {
                                let at = r as usize * cols + start;
                                axpy(acc, times, &table[at..at + width]);
                            }
                        }
                        let intervals = (0..width)
                            .map(|j| {
                                let mut column: Vec<f32> =
                                    (0..replicates).map(|b| means[b * width + j]).collect();
                                column.sort_by(f32::total_cmp);
                                let at = |q: f64| {
                                    let i = (q * (replicates - 1) as f64).round() as usize;
                                    f64::from(column[i]) / rows as f64
                                };
                                (at(tail), at(1.0 - tail))
                            })
                            .collect();
                        mine.push((start, intervals));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bootstrap thread"))
            .collect()
    });
    for (start, intervals) in results.into_iter().flatten() {
        out[start..start + intervals.len()].copy_from_slice(&intervals);
    }
    out
}

/// `acc += times × row`; full blocks get a fixed-width loop the compiler
/// unrolls and vectorizes.
#[inline]
fn axpy(acc: &mut [f32], times: f32, row: &[f32]) {
    if acc.len() == BLOCK && row.len() == BLOCK {
        let acc: &mut [f32; BLOCK] = acc.try_into().expect("checked length");
        let row: &[f32; BLOCK] = row.try_into().expect("checked length");
        for i in 0..BLOCK {
            acc[i] += times * row[i];
        }
    } else {
        for (a, x) in acc.iter_mut().zip(row) {
            *a += times * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_mean_and_is_seeded() {
        let table: Vec<f32> = (0..200)
            .map(|i| if i % 2 == 0 { 1.0 } else { 0.0 })
            .collect();
        let draw = |seed| intervals(&table, 200, 1, 1000, 0.95, &mut crate::seed::rng(seed, &[]));
        let a = draw(1);
        assert_eq!(a, draw(1));
        let (lo, hi) = a[0];
        assert!(lo < 0.5 && 0.5 < hi, "{lo} {hi}");
        // Standard error is 0.035: the interval is about ±0.07.
        assert!(hi - lo > 0.09 && hi - lo < 0.18, "{lo} {hi}");
    }

    #[test]
    fn intervals_of_many_columns_match_column_by_column() {
        // Column blocks go to threads; each column's interval must not depend on that.
        let (rows, cols) = (50, 150);
        let table: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919) % 13) as f32 / 13.0)
            .collect();
        let all = intervals(&table, rows, cols, 200, 0.9, &mut crate::seed::rng(3, &[]));
        for c in [0, 63, 64, 149] {
            let column: Vec<f32> = (0..rows).map(|r| table[r * cols + c]).collect();
            let alone = intervals(&column, rows, 1, 200, 0.9, &mut crate::seed::rng(3, &[]));
            assert_eq!(all[c], alone[0], "column {c}");
        }
    }
}
