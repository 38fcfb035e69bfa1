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

/// The percentile interval at `level` of a statistic over bootstrap
/// replicates, from the replicates that define it (`Some`): the sorted
/// values at rank round(q·(n − 1)) for q = (1 − level)/2 and 1 − q, as
/// [`intervals`] takes them. Also how many replicates leave it undefined,
/// which callers report beside the interval. No interval when none define it.
pub fn percentile_interval(
    replicates: impl IntoIterator<Item = Option<f64>>,
    level: f64,
) -> (Option<[f64; 2]>, usize) {
    let mut defined = Vec::new();
    let mut undefined = 0;
    for value in replicates {
        match value {
            Some(v) => defined.push(v),
            None => undefined += 1,
        }
    }
    if defined.is_empty() {
        return (None, undefined);
    }
    defined.sort_by(f64::total_cmp);
    let at = |q: f64| defined[(q * (defined.len() - 1) as f64).round() as usize];
    let tail = (1.0 - level) / 2.0;
    (Some([at(tail), at(1.0 - tail)]), undefined)
}

/// Replicates drawn at once: their draw counts are held together as an f32
/// matrix (4 bytes a row each), so memory grows with the chunk, not with
/// every replicate.
const CHUNK: usize = 256;

/// Columns below which a table is not split across threads.
const MIN_COLUMNS_PER_THREAD: usize = 64;

/// How often each row is drawn in each of `replicates` resamples, replicate
/// by replicate (`replicates × rows`), as the weights of a matrix product.
fn draw(rows: usize, replicates: usize, rng: &mut impl RngExt) -> Vec<f32> {
    let mut times = vec![0f32; replicates * rows];
    for replicate in times.chunks_mut(rows) {
        for _ in 0..rows {
            replicate[rng.random_range(0..rows)] += 1.0;
        }
    }
    times
}

/// Intervals of every column of a row-major `rows × cols` table over
/// `replicates` resamples drawn from `rng`.
///
/// A chunk of replicates' column sums is one matrix product, draw counts
/// (replicates × rows) times the table (rows × cols), done by a blocked,
/// SIMD kernel; threads take column ranges, and a column's sums do not
/// depend on which range it falls in.
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
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(cols.div_ceil(MIN_COLUMNS_PER_THREAD));
    let span = cols.div_ceil(threads);
    // Replicate sums, row-major: replicates × cols.
    let mut sums = vec![0f32; replicates * cols];
    for first in (0..replicates).step_by(CHUNK) {
        let count = CHUNK.min(replicates - first);
        let times = draw(rows, count, rng);
        let parts: Vec<(usize, usize, Vec<f32>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..cols)
                .step_by(span)
                .map(|start| {
                    let (times, width) = (&times, span.min(cols - start));
                    s.spawn(move || {
                        let part = weighted_sums(times, count, table, rows, cols, start, width);
                        (start, width, part)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bootstrap thread"))
                .collect()
        });
        for (start, width, part) in parts {
            for (i, sums_row) in part.chunks(width).enumerate() {
                let at = (first + i) * cols + start;
                sums[at..at + width].copy_from_slice(sums_row);
            }
        }
    }
    let tail = (1.0 - confidence) / 2.0;
    (0..cols)
        .map(|c| {
            let mut column: Vec<f32> = (0..replicates).map(|b| sums[b * cols + c]).collect();
            column.sort_by(f32::total_cmp);
            let at = |q: f64| {
                let i = (q * (replicates - 1) as f64).round() as usize;
                f64::from(column[i]) / rows as f64
            };
            (at(tail), at(1.0 - tail))
        })
        .collect()
}

/// `weights (m × k) · table[.., start..start + width]`, where `table` is a
/// row-major `k × cols` matrix: an `m × width` row-major matrix.
fn weighted_sums(
    weights: &[f32],
    m: usize,
    table: &[f32],
    k: usize,
    cols: usize,
    start: usize,
    width: usize,
) -> Vec<f32> {
    assert!(weights.len() == m * k && table.len() == k * cols && start + width <= cols);
    let mut out = vec![0f32; m * width];
    if m == 0 || k == 0 || width == 0 {
        return out;
    }
    // SAFETY: the assertion bounds every element sgemm touches: `weights` is
    // m × k with strides (k, 1); the table's columns start..start + width,
    // k rows with strides (cols, 1), end within `table`; `out` is m × width
    // with strides (width, 1).
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            width,
            1.0,
            weights.as_ptr(),
            k as isize,
            1,
            table.as_ptr().add(start),
            cols as isize,
            1,
            0.0,
            out.as_mut_ptr(),
            width as isize,
            1,
        );
    }
    out
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
    fn percentile_interval_takes_the_nearest_rank_of_each_tail() {
        // 100 values 1..=100 in any order, 90%: ranks round(0.05·99) = 5 and
        // round(0.95·99) = 94, the values 6 and 95.
        let values = (1..=100).rev().map(|i| Some(f64::from(i)));
        assert_eq!(percentile_interval(values, 0.9), (Some([6.0, 95.0]), 0));
        // 95% of 1000 values 0..999 shuffled: ranks round(24.975) = 25 and
        // round(974.025) = 974; undefined replicates are counted, not ranked.
        let values = (0..1000)
            .map(|i| Some(f64::from((i * 7919) % 1000)))
            .chain([None, None]);
        assert_eq!(percentile_interval(values, 0.95), (Some([25.0, 974.0]), 2));
        assert_eq!(
            percentile_interval([Some(3.0)], 0.95),
            (Some([3.0, 3.0]), 0)
        );
        assert_eq!(percentile_interval([None], 0.95), (None, 1));
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
