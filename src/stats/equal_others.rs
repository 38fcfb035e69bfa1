//! Majority's hardest case, fast: the others that can reach the correct
//! answer's count m are all equally likely (every one can tie with it).
//! Used by [`super::theory::Majority`] in place of its answer-by-answer
//! dynamic programme, whose tie dimension is what makes this case slow.
//!
//! Given that the others share t samples, their counts are independent
//! Poisson counts conditioned on their sum being t, at any common scale
//! (Poissonization). With g equally likely answers, each count Poisson(λ)
//! with pmf f, the wanted E[1{every count ≤ m} / (1 + #{count = m})] is
//!
//!   [xᵗ] Σⱼ C(g, j)/(1 + j) · (f(m)xᵐ)ʲ · A(x)^(g − j) · E(x) / Poisson(s; t),
//!
//! where A(x) = Σ_{k<m} f(k)xᵏ, E(x) = e^{μ(x − 1)} carries the rest
//! (answers too unlikely to reach m, abstention: mass μ) and s is the total
//! rate. The coefficient is read by a discrete Fourier transform at that one
//! point: the polynomial is evaluated at the L-th roots of unity (L above
//! every degree with non-negligible mass, so nothing aliases) by Horner's
//! rule in j, and A is kept across m (adding one term per step), so a
//! correct count costs O(L·(J + log g)) for the J tie counts that matter,
//! against the programme's O(g·S·W·J). The scale s is n(1 − p*), the mean
//! of t, so the normaliser Poisson(s; t) falls no faster than m's own
//! weight does, and the transform's rounding (about 1e-16 of the total
//! mass) stays below 1e-13 of the result's scale.

use super::theory::ln_poisson;

/// Below this (relative to the largest) a tie count's term is dropped.
const TERM_TAIL: f64 = 1e-20;

/// g equally likely others, each with `share` of the others' mass.
pub(super) struct EqualOthers {
    g: usize,
    share: f64,
    p_correct: f64,
    /// For the n last asked: the Poisson scale, the transform's roots
    /// e^{2πik/L}, A at the first L/2 + 1 of them, summed over k < `next`.
    n: usize,
    scale: f64,
    roots: Vec<Complex>,
    a: Vec<Complex>,
    next: usize,
}

impl EqualOthers {
    pub(super) fn new(g: usize, share: f64, p_correct: f64) -> Self {
        EqualOthers {
            g,
            share,
            p_correct,
            n: 0,
            scale: 0.0,
            roots: Vec::new(),
            a: Vec::new(),
            next: 0,
        }
    }

    /// How many equally likely answers.
    pub(super) fn len(&self) -> usize {
        self.g
    }

    /// E[1{each of the g ≤ m} / (1 + #{= m})] when the others (these, the
    /// ones too unlikely to reach m, and abstention) share n − m samples.
    /// Fastest when asked m in increasing order for one n.
    pub(super) fn at_most(&mut self, n: usize, m: usize) -> f64 {
        let t = n - m;
        if t == 0 {
            return 1.0;
        }
        if n != self.n || m < self.next {
            self.reset(n, m);
        }
        let lambda = self.scale * self.share;
        while self.next < m {
            self.add(lambda, self.next);
            self.next += 1;
        }
        let below = self.a[0].re; // Σ_{k<m} f(k): the chance one count is below m
        let ln_f_m = ln_poisson(lambda, m);
        if below <= f64::MIN_POSITIVE || ln_f_m == f64::NEG_INFINITY {
            return 0.0;
        }
        // κⱼ = C(g, j)/(1 + j) · below^(g − j) · f(m)ʲ, each at most 1.
        let jmax = self.g.min(t / m);
        let ln_below = below.ln();
        let mut ln_kappa = Vec::with_capacity(jmax + 1);
        let mut ln_choose = 0.0;
        for j in 0..=jmax {
            if j > 0 {
                ln_choose += ((self.g - j + 1) as f64 / j as f64).ln();
            }
            ln_kappa.push(
                ln_choose - ((1 + j) as f64).ln()
                    + (self.g - j) as f64 * ln_below
                    + j as f64 * ln_f_m,
            );
        }
        let top = ln_kappa.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let cut = top + TERM_TAIL.ln();
        let lo = ln_kappa.iter().position(|&x| x >= cut).unwrap_or(0);
        let hi = ln_kappa.iter().rposition(|&x| x >= cut).unwrap_or(0);
        let kappa: Vec<f64> = ln_kappa[lo..=hi].iter().map(|x| x.exp()).collect();
        let mu = (self.scale * (1.0 - self.g as f64 * self.share)).max(0.0);
        let len = self.roots.len();
        let mut sum = 0.0;
        for (l, &a) in self.a.iter().enumerate() {
            // Σⱼ κⱼ·u^(g − j)·vʲ with u = A/below, v = e^{iωm}, by Horner in j.
            let u = a.scale(1.0 / below);
            let step = l * m % len;
            let mut at = lo * step % len;
            let mut acc = Complex::ZERO;
            for &k in &kappa {
                acc = acc.mul(u).add(self.roots[at].scale(k));
                at = (at + step) % len;
            }
            let w = self.roots[l];
            let rest = Complex::polar((mu * (w.re - 1.0)).exp(), mu * w.im);
            let psi = acc.mul(u.pow(self.g - hi)).mul(rest);
            let back = self.roots[(len - l * t % len) % len];
            let term = psi.mul(back).re;
            // Real coefficients: ω and −ω give conjugates.
            sum += if l == 0 || 2 * l == len {
                term
            } else {
                2.0 * term
            };
        }
        let norm = ln_poisson(self.scale, t);
        (sum / len as f64 / norm.exp()).clamp(0.0, 1.0)
    }

    /// Start over for `n`, A summed from the first count with
    /// non-negligible mass (or `m`, if that is lower).
    fn reset(&mut self, n: usize, m: usize) {
        self.n = n;
        self.scale = n as f64 * (1.0 - self.p_correct);
        let len = n + 51 + (20.0 * (n as f64).sqrt()).ceil() as usize;
        self.roots = (0..len)
            .map(|k| Complex::polar(1.0, std::f64::consts::TAU * k as f64 / len as f64))
            .collect();
        self.a = vec![Complex::ZERO; len / 2 + 1];
        let lambda = self.scale * self.share;
        let first = (lambda - 20.0 * lambda.sqrt() - 10.0).max(0.0) as usize;
        self.next = first.min(m);
    }

    /// A += f(k)·x^k at every root kept.
    fn add(&mut self, lambda: f64, k: usize) {
        let f = ln_poisson(lambda, k).exp();
        if f == 0.0 {
            return;
        }
        let len = self.roots.len();
        let step = k % len;
        let mut at = 0;
        for a in &mut self.a {
            *a = a.add(self.roots[at].scale(f));
            at = (at + step) % len;
        }
    }
}

/// Just enough complex arithmetic for the transform.
#[derive(Debug, Clone, Copy)]
struct Complex {
    re: f64,
    im: f64,
}

impl Complex {
    const ZERO: Complex = Complex { re: 0.0, im: 0.0 };
    const ONE: Complex = Complex { re: 1.0, im: 0.0 };

    fn polar(r: f64, theta: f64) -> Complex {
        let (sin, cos) = theta.sin_cos();
        Complex {
            re: r * cos,
            im: r * sin,
        }
    }

    fn add(self, o: Complex) -> Complex {
        Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }

    fn mul(self, o: Complex) -> Complex {
        Complex {
            re: self.re * o.re - self.im * o.im,
            im: self.re * o.im + self.im * o.re,
        }
    }

    fn scale(self, k: f64) -> Complex {
        Complex {
            re: self.re * k,
            im: self.im * k,
        }
    }

    /// By squaring: O(log e) products.
    fn pow(self, mut e: usize) -> Complex {
        let (mut base, mut out) = (self, Complex::ONE);
        while e > 0 {
            if e & 1 == 1 {
                out = out.mul(base);
            }
            base = base.mul(base);
            e >>= 1;
        }
        out
    }
}
