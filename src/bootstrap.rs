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
    let found = if varying.len() == cols {
        resample(table, rows, cols, replicates, confidence, rng)
    } else {
        let compact: Vec<f32> = (0..rows)
            .flat_map(|r| varying.iter().map(move |&c| table[r * cols + c]))
            .collect();
        resample(&compact, rows, varying.len(), replicates, confidence, rng)
    };
    for (&c, interval) in varying.iter().zip(found) {
        out[c] = interval;
    }
    out
}

/// Columns summed together by one thread.
const BLOCK: usize = 32;

/// Replicates drawn at once: their draw counts (2 bytes a row each) are held
/// together, so memory grows with the chunk, not with every replicate.
const CHUNK: usize = 128;

/// How often each row is drawn in each of `replicates` resamples, replicate
/// by replicate (`replicates × rows`).
fn draw(rows: usize, replicates: usize, rng: &mut impl RngExt) -> Vec<u16> {
    let mut times = vec![0u16; replicates * rows];
    for replicate in times.chunks_mut(rows) {
        for _ in 0..rows {
            let t = &mut replicate[rng.random_range(0..rows)];
            *t = t.saturating_add(1);
        }
    }
    times
}

/// Intervals of every column of a row-major `rows × cols` table over
/// `replicates` resamples drawn from `rng`.
fn resample(
    table: &[f32],
    rows: usize,
    cols: usize,
    replicates: usize,
    confidence: f64,
    rng: &mut impl RngExt,
) -> Vec<(f64, f64)> {
    if cols == 0 {
        return Vec::new();
    }
    // Replicate sums by column block: block k holds replicates × BLOCK sums,
    // so each thread writes its own blocks.
    let blocks = cols.div_ceil(BLOCK);
    let mut sums = vec![0f32; blocks * replicates * BLOCK];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(blocks);
    for first in (0..replicates).step_by(CHUNK) {
        let times = draw(rows, CHUNK.min(replicates - first), rng);
        let mut mine: Vec<Vec<(usize, &mut [f32])>> = (0..threads).map(|_| Vec::new()).collect();
        for (k, block) in sums.chunks_mut(replicates * BLOCK).enumerate() {
            mine[k % threads].push((k, block));
        }
        std::thread::scope(|s| {
            for blocks in mine {
                let times = &times;
                s.spawn(move || {
                    let mut columns = Vec::with_capacity(rows * BLOCK);
                    for (k, block) in blocks {
                        // The block's columns, contiguous: every replicate
                        // reads them all, so they should stay in cache (in
                        // the table, rows a row-width apart map to few cache
                        // sets).
                        let start = k * BLOCK;
                        let width = BLOCK.min(cols - start);
                        columns.clear();
                        for r in 0..rows {
                            let row = r * cols + start;
                            columns.extend_from_slice(&table[row..row + width]);
                        }
                        for (i, drawn) in times.chunks(rows).enumerate() {
                            let at = (first + i) * BLOCK;
                            let acc = &mut block[at..at + width];
                            for (r, &t) in drawn.iter().enumerate() {
                                if t > 0 {
                                    axpy(acc, f32::from(t), &columns[r * width..(r + 1) * width]);
                                }
                            }
                        }
                    }
                });
            }
        });
    }
    let tail = (1.0 - confidence) / 2.0;
    (0..cols)
        .map(|c| {
            let (k, j) = (c / BLOCK, c % BLOCK);
            let block = &sums[k * replicates * BLOCK..(k + 1) * replicates * BLOCK];
            let mut column: Vec<f32> = (0..replicates).map(|b| block[b * BLOCK + j]).collect();
            column.sort_by(f32::total_cmp);
            let at = |q: f64| {
                let i = (q * (replicates - 1) as f64).round() as usize;
                f64::from(column[i]) / rows as f64
            };
            (at(tail), at(1.0 - tail))
        })
        .collect()
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
