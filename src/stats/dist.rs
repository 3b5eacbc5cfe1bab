//! Distribution functions the intervals and tests need: the normal and Student-t distributions,
//! the regularized incomplete beta function, the binomial distribution, McNemar's exact test,
//! distribution-free quantile ranks and Holm's step-down adjustment.
//!
//! Plain `f64` arithmetic, no dependency. Every function is total: it never panics, and NaN or
//! out-of-domain input gives NaN (or the limit value its doc comment names).
//!
//! A gate reads its p-values in the far tails (1e-12 must not come out as 0, or as 1e-11), so
//! each tail probability is computed directly, never as `1 - (the other tail)`: the private
//! helpers return both tails of a distribution, each to full relative accuracy.

// The published coefficients below are kept digit for digit, even where a literal has more
// digits than an f64 holds: that way each table can be checked against its source by eye.
#![allow(clippy::excessive_precision)]

use std::f64::consts::PI;

/// ln √(2π).
const LN_SQRT_2PI: f64 = 0.918938533204672741780329736406;
/// 1/√(2π).
const FRAC_1_SQRT_2PI: f64 = 0.398942280401432677939946059934;

// ---------------------------------------------------------------------------------------------
// Normal distribution
// ---------------------------------------------------------------------------------------------

/// Standard normal CDF Φ(x).
///
/// W. J. Cody's rational Chebyshev approximations (ANORM, in "Algorithm 715: SPECFUN", ACM TOMS
/// 19 (1993) 22-32; coefficients from Cody, Math. Comp. 23 (1969) 631-637), which work on Φ
/// directly rather than on erfc(x/√2): that avoids the rounding of x/√2, which would cost
/// ~x²·ε of relative accuracy in the tails. Relative error ~1e-15 in both tails, down to the
/// underflow of f64 (Φ(-38.5) ≈ 1e-324). NaN → NaN; ±∞ → 1 or 0.
pub fn normal_cdf(x: f64) -> f64 {
    normal_tails(x).0
}

/// (Φ(x), 1 − Φ(x)), each to full relative accuracy (Cody's ANORM, see [`normal_cdf`]).
fn normal_tails(x: f64) -> (f64, f64) {
    // |x| <= 0.66291: Φ(x) = 1/2 + x·R(x²).
    const A: [f64; 5] = [
        2.2352520354606839287e00,
        1.6102823106855587881e02,
        1.0676894854603709582e03,
        1.8154981253343561249e04,
        6.5682337918207449113e-2,
    ];
    const B: [f64; 4] = [
        4.7202581904688241870e01,
        9.7609855173777669322e02,
        1.0260932208618978205e04,
        4.5507789335026729956e04,
    ];
    // 0.66291 < |x| <= √32: tail = exp(-x²/2)·R(|x|).
    const C: [f64; 9] = [
        3.9894151208813466764e-1,
        8.8831497943883759412e00,
        9.3506656132177855979e01,
        5.9727027639480026226e02,
        2.4945375852903726711e03,
        6.8481904505362823326e03,
        1.1602651437647350124e04,
        9.8427148383839780218e03,
        1.0765576773720192317e-8,
    ];
    const D: [f64; 8] = [
        2.2266688044328115691e01,
        2.3538790178262499861e02,
        1.5193775994075548050e03,
        6.4855582982667607550e03,
        1.8615571640885098091e04,
        3.4900952721145977266e04,
        3.8912003286093271411e04,
        1.9685429676859990727e04,
    ];
    // |x| > √32: tail = exp(-x²/2)/|x| · (1/√(2π) − R(1/x²)/x²).
    const P: [f64; 6] = [
        2.1589853405795699e-1,
        1.274011611602473639e-1,
        2.2235277870649807e-2,
        1.421619193227893466e-3,
        2.9112874951168792e-5,
        2.307344176494017303e-2,
    ];
    const Q: [f64; 5] = [
        1.28426009614491121e00,
        4.68238212480865118e-1,
        6.59881378689285515e-2,
        3.78239633202758244e-3,
        7.29751555083966205e-5,
    ];
    /// Beyond this |x| the smaller tail is below the smallest subnormal f64.
    const UNDERFLOW: f64 = 40.0;

    if x.is_nan() {
        return (f64::NAN, f64::NAN);
    }
    let y = x.abs();
    if y <= 0.66291 {
        // Below ε/2, x² only risks underflow and changes nothing: Cody sets it to 0.
        let xsq = if y > f64::EPSILON / 2.0 { x * x } else { 0.0 };
        let mut num = A[4] * xsq;
        let mut den = xsq;
        for i in 0..3 {
            num = (num + A[i]) * xsq;
            den = (den + B[i]) * xsq;
        }
        let half_width = x * (num + A[3]) / (den + B[3]);
        return (0.5 + half_width, 0.5 - half_width);
    }
    let small_tail = if y <= 32f64.sqrt() {
        let mut num = C[8] * y;
        let mut den = y;
        for i in 0..7 {
            num = (num + C[i]) * y;
            den = (den + D[i]) * y;
        }
        (num + C[7]) / (den + D[7]) * exp_minus_half_square(y)
    } else if y < UNDERFLOW {
        let xsq = 1.0 / (y * y);
        let mut num = P[5] * xsq;
        let mut den = xsq;
        for i in 0..4 {
            num = (num + P[i]) * xsq;
            den = (den + Q[i]) * xsq;
        }
        let r = xsq * (num + P[4]) / (den + Q[4]);
        (FRAC_1_SQRT_2PI - r) / y * exp_minus_half_square(y)
    } else {
        0.0
    };
    if x > 0.0 {
        (1.0 - small_tail, small_tail)
    } else {
        (small_tail, 1.0 - small_tail)
    }
}

/// exp(−y²/2) for 0 <= y < 40, without the rounding error of forming y²: Cody's split
/// y = s + (y − s) with s = trunc(16y)/16, whose square is exact; y² − s² = (y − s)(y + s).
fn exp_minus_half_square(y: f64) -> f64 {
    let s = (y * 16.0).trunc() / 16.0;
    let rest = (y - s) * (y + s);
    (-s * s * 0.5).exp() * (-rest * 0.5).exp()
}

/// Inverse of Φ: Wichura's algorithm AS 241 (PPND16), Applied Statistics 37 (1988) 477-484,
/// relative accuracy ~1e-16.
///
/// p in (0, 1); p <= 0 → −∞, p >= 1 → +∞, NaN → NaN.
pub fn normal_quantile(p: f64) -> f64 {
    // Central region |p − 1/2| <= 0.425.
    const A: [f64; 8] = [
        3.3871328727963666080e0,
        1.3314166789178437745e2,
        1.9715909503065514427e3,
        1.3731693765509461125e4,
        4.5921953931549871457e4,
        6.7265770927008700853e4,
        3.3430575583588128105e4,
        2.5090809287301226727e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.2313330701600911252e1,
        6.8718700749205790830e2,
        5.3941960214247511077e3,
        2.1213794301586595867e4,
        3.9307895800092710610e4,
        2.8729085735721942674e4,
        5.2264952788528545610e3,
    ];
    // Intermediate tail, r = √(−ln min(p, 1−p)) <= 5.
    const C: [f64; 8] = [
        1.42343711074968357734e0,
        4.63033784615654529590e0,
        5.76949722146069140550e0,
        3.64784832476320460504e0,
        1.27045825245236838258e0,
        2.41780725177450611770e-1,
        2.27238449892691845833e-2,
        7.74545014278341407640e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.05319162663775882187e0,
        1.67638483018380384940e0,
        6.89767334985100004550e-1,
        1.48103976427480074590e-1,
        1.51986665636164571966e-2,
        5.47593808499534494600e-4,
        1.05075007164441684324e-9,
    ];
    // Far tail, r > 5 (p < 1.4e-11).
    const E: [f64; 8] = [
        6.65790464350110377720e0,
        5.46378491116411436990e0,
        1.78482653991729133580e0,
        2.96560571828504891230e-1,
        2.65321895265761230930e-2,
        1.24266094738807843860e-3,
        2.71155556874348757815e-5,
        2.01033439929228813265e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.99832206555887937690e-1,
        1.36929880922735805310e-1,
        1.48753612908506148525e-2,
        7.86869131145613259100e-4,
        1.84631831751005468180e-5,
        1.42151175831644588870e-7,
        2.04426310338993978564e-15,
    ];

    if p.is_nan() {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * polynomial(&A, r) / polynomial(&B, r);
    }
    // The smaller tail; 1 − p is exact for p >= 1/2 (Sterbenz).
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let magnitude = if r <= 5.0 {
        let r = r - 1.6;
        polynomial(&C, r) / polynomial(&D, r)
    } else {
        let r = r - 5.0;
        polynomial(&E, r) / polynomial(&F, r)
    };
    if q < 0.0 { -magnitude } else { magnitude }
}

/// c[0] + c[1]·x + c[2]·x² + … by Horner's rule.
fn polynomial(coefficients: &[f64], x: f64) -> f64 {
    coefficients.iter().rev().fold(0.0, |acc, &c| acc * x + c)
}

// ---------------------------------------------------------------------------------------------
// Gamma and beta functions
// ---------------------------------------------------------------------------------------------

/// Below this the Stirling series is not accurate to f64 precision (its next term at 15 is
/// ~3e-18), so ln Γ and the Stirling error are computed from the Lanczos sum there instead.
const STIRLING_MIN: f64 = 15.0;

/// ln Γ(x) for x > 0: absolute error below ~2e-15 for x < 15 (relative ~1e-15 away from the
/// zeros at 1 and 2, up to ~4e-14 next to them), relative ~1e-16 from 15 up.
///
/// Lanczos's approximation with g = 7 and n = 9 coefficients (the widely published set, e.g.
/// Godfrey's, as in Press et al. and Wikipedia's "Lanczos approximation") for x < 15, using
/// Γ(x) = Γ(x+1)/x below 1/2; the Stirling series with six terms from 15 up, where it is exact
/// to f64 precision and, unlike the Lanczos sum, loses nothing to large arguments.
///
/// x = 0 → +∞; x = +∞ → +∞; x < 0 (not needed here) or NaN → NaN.
pub fn ln_gamma(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x == f64::INFINITY {
        return f64::INFINITY;
    }
    if x < 0.5 {
        // The Lanczos sum is built for arguments >= 1/2. ln Γ(1 + x) is near 0 here, so the
        // rounding of 1 + x costs only an absolute ~1e-16.
        return ln_gamma_lanczos(x + 1.0) - x.ln();
    }
    if x < STIRLING_MIN {
        return ln_gamma_lanczos(x);
    }
    (x - 0.5) * x.ln() - x + LN_SQRT_2PI + stirling_series(x)
}

/// ln Γ(x) for x >= 1/2 by Lanczos's formula Γ(z+1) = √(2π)·t^(z+½)·e^(−t)·A_g(z),
/// t = z + g + ½, with g = 7 and nine coefficients.
fn ln_gamma_lanczos(x: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.99999999999980993,
        676.5203681218851,
        -1259.1392167224028,
        771.32342877765313,
        -176.61502916214059,
        12.507343278686905,
        -0.13857109526572012,
        9.9843695780195716e-6,
        1.5056327351493116e-7,
    ];
    let z = x - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, &c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (z + i as f64);
    }
    let t = z + G + 0.5;
    LN_SQRT_2PI + (z + 0.5) * t.ln() - t + sum.ln()
}

/// The Stirling series for δ(x) = ln Γ(x) − [(x − ½) ln x − x + ln √(2π)], x >= 15:
/// 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹) − 691/(360360x¹¹).
fn stirling_series(x: f64) -> f64 {
    const S0: f64 = 1.0 / 12.0;
    const S1: f64 = 1.0 / 360.0;
    const S2: f64 = 1.0 / 1260.0;
    const S3: f64 = 1.0 / 1680.0;
    const S4: f64 = 1.0 / 1188.0;
    const S5: f64 = 691.0 / 360360.0;
    let x2 = 1.0 / (x * x);
    (S0 - (S1 - (S2 - (S3 - (S4 - S5 * x2) * x2) * x2) * x2) * x2) / x
}

/// Stirling's error δ(x) = ln Γ(x) − [(x − ½) ln x − x + ln √(2π)] for x > 0.
///
/// It is what is left of ln Γ once the large terms are taken out analytically; building the
/// incomplete beta's prefactor from it (rather than from three ln Γ values of size ~x ln x that
/// cancel) is what keeps binomial tails accurate for n in the millions.
fn stirling_error(x: f64) -> f64 {
    if x >= STIRLING_MIN {
        stirling_series(x)
    } else {
        ln_gamma(x) - (x - 0.5) * x.ln() + x - LN_SQRT_2PI
    }
}

/// ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b). Adequate where a few units in the last place
/// of a quantity of size ln Γ(a + b) do not matter (densities for Newton steps, bounds).
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The deviance term bd0(x, m) = x ln(x/m) + m − x >= 0, given `diff` = x − m computed by the
/// caller without cancellation.
///
/// After Catherine Loader, "Fast and accurate computation of binomial probabilities" (2000):
/// when x and m are close, the direct formula subtracts nearly equal numbers of size x, so use
/// the series bd0 = diff·v + 2x Σ_{j>=1} v^(2j+1)/(2j+1), v = diff/(x + m), which has no such
/// cancellation. Loader switches at |v| < 0.1; here the series is used up to |v| < 1/2 (at most
/// ~25 terms), because just above 0.1 the direct formula still loses ~x·ε absolutely, which
/// for x ~ 10⁴ shows as a relative error of 1e-12 in a binomial tail.
fn deviance_term(x: f64, m: f64, diff: f64) -> f64 {
    if x == 0.0 {
        return m;
    }
    if diff.abs() < 0.5 * (x + m) {
        let v = diff / (x + m);
        let v2 = v * v;
        let mut sum = diff * v;
        let mut power = 2.0 * x * v;
        for j in 1..200 {
            power *= v2;
            let next = sum + power / f64::from(2 * j + 1);
            if next == sum {
                return next;
            }
            sum = next;
        }
        sum
    } else {
        // x/m >= 3 or <= 1/3: ln(x/m) is not small, so its rounding costs only ~ε relatively.
        x * (x / m).ln() - diff
    }
}

/// ln of the incomplete beta prefactor x^a·y^b / B(a, b), for a, b > 0, x, y > 0, x + y = 1,
/// given `lambda` = a − (a + b)x computed without cancellation.
///
/// Written in the saddle-point form of Loader (2000) (also DiDonato & Morris's BRCOMP idea):
/// x^a y^b / B(a, b) = √(ab / (2π(a+b))) · exp(−bd0(a, (a+b)x) − bd0(b, (a+b)y) + δ(a+b) − δ(a) − δ(b)).
/// Every term is small when the result is not negligible, so the relative error stays ~1e-14
/// even for a + b ~ 10⁷, where ln Γ-differences would lose ~1e-8.
fn ln_beta_prefactor(a: f64, b: f64, x: f64, y: f64, lambda: f64) -> f64 {
    let s = a + b;
    // a − s·x = lambda and b − s·y = −lambda are the deviations the deviance terms need.
    0.5 * (a.ln() + b.ln() - s.ln())
        - LN_SQRT_2PI
        - deviance_term(a, s * x, lambda)
        - deviance_term(b, s * y, -lambda)
        + stirling_error(s)
        - stirling_error(a)
        - stirling_error(b)
}

/// The continued fraction for I_x(a, b)/prefactor, for x < (a + 1)/(a + b + 2), given
/// `lambda` = a − (a + b)x (which is then > −1).
///
/// This is the form of DiDonato & Morris's BFRAC (ACM TOMS Algorithm 708, 1992): the even
/// contraction of the classical fraction (Numerical Recipes' `betacf`; the same convergents,
/// checked to 40 digits), whose partial denominators contain 1 + lambda where `betacf` forms
/// the cancelling 1 − (a + b)x/(a + 1). With lambda computed from the smaller of x and 1 − x,
/// nothing cancels even when x is the rounded 1 − p of a tiny p: a binomial tail with n = 10⁷
/// and p ~ 10⁻⁶ keeps ~1e-13 relative accuracy, where `betacf` loses ~1e-10. Evaluated by the
/// modified Lentz method (Lentz 1976; Thompson & Barnett 1986). It needs the most terms near
/// the mean, about 5.5·max(a, b)^(1/3) there as measured (936 for a binomial with n = 10⁷ and
/// p = 1/2, ~10⁵ for n = 10¹³).
fn beta_continued_fraction(a: f64, b: f64, x: f64, y: f64, lambda: f64) -> f64 {
    /// Lentz's guard: a partial denominator that is exactly 0 is replaced by this.
    const TINY: f64 = 1e-300;
    /// Relative change of the last factor at which the fraction has converged.
    const TOLERANCE: f64 = 1e-15;
    let guard = |v: f64| if v.abs() < TINY { TINY } else { v };

    let c = 1.0 + lambda;
    let c0 = b / a;
    let c1 = 1.0 + 1.0 / a;
    let y_plus_1 = 1.0 + y;
    // The value is 1/f with f = c/c1 + α₁/(β₁ + α₂/(β₂ + …)); Lentz builds f as a product.
    let mut f = guard(c / c1);
    let mut lentz_c = f;
    let mut lentz_d = 0.0;
    let mut p = 1.0;
    let mut s = a + 1.0;
    // Far more than the ~5.5·max(a, b)^(1/3) terms needed near the mean for a, b up to
    // ~6·10¹⁵; beyond that the cap of 10⁶ bounds the time (~10 ms) and the result is NaN.
    let max_terms = (1000.0 + 10.0 * a.max(b).sqrt()).min(1e6) as u32;
    for n in 1..=max_terms {
        let n = f64::from(n);
        let t = n / a;
        let w = n * (b - n) * x;
        let e = a / s;
        let alpha = p * (p + c0) * e * e * (w * x);
        let e = (1.0 + t) / (c1 + t + t);
        let beta = n + w / s + e * (c + n * y_plus_1);
        p = 1.0 + t;
        s += 2.0;
        lentz_d = 1.0 / guard(beta + alpha * lentz_d);
        lentz_c = guard(beta + alpha / lentz_c);
        let factor = lentz_c * lentz_d;
        f *= factor;
        if (factor - 1.0).abs() < TOLERANCE {
            return 1.0 / f;
        }
    }
    // Not converged within the budget (only near the mean with a, b above ~10¹⁵): a truncated
    // fraction can be arbitrarily wrong, so say so.
    f64::NAN
}

/// Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1].
///
/// A continued fraction (TOMS 708's BFRAC form, see `beta_continued_fraction`) evaluated by the
/// modified Lentz method, applied to I_x(a, b) directly when x < (a + 1)/(a + b + 2) and
/// otherwise to the symmetric form I_x(a, b) = 1 − I_{1−x}(b, a), so that it always converges
/// fast; the prefactor x^a(1−x)^b/B(a, b) comes from Loader's saddle-point form, accurate for
/// large a and b.
///
/// NaN, a or b not finite and > 0, or x outside [0, 1] → NaN; also NaN for a and b both above
/// ~10¹⁵ with x near the mean, where the fraction does not converge within 10⁶ terms.
pub fn beta_inc(a: f64, b: f64, x: f64) -> f64 {
    if !valid_shape(a) || !valid_shape(b) || !(0.0..=1.0).contains(&x) {
        return f64::NAN;
    }
    // For x < 1/2, x is the exact input and 1 − x the rounded one; for x >= 1/2, 1 − x is exact.
    beta_inc_tails(a, b, x, 1.0 - x).0
}

/// A shape parameter of the beta distribution: finite and > 0.
fn valid_shape(a: f64) -> bool {
    a > 0.0 && a.is_finite()
}

/// (I_x(a, b), 1 − I_x(a, b)), each to full relative accuracy, for finite a, b > 0 and
/// x, y >= 0 with x + y = 1, where the smaller of x and y must be accurate (the larger may be
/// the rounded 1 − smaller): all cancellation-prone quantities are formed from the smaller.
fn beta_inc_tails(a: f64, b: f64, x: f64, y: f64) -> (f64, f64) {
    if x <= 0.0 {
        return (0.0, 1.0);
    }
    if y <= 0.0 {
        return (1.0, 0.0);
    }
    let s = a + b;
    // lambda = a − s·x = s·y − b, from the accurate one of x and y, with a single rounding.
    let lambda = if x <= y {
        (-s).mul_add(x, a)
    } else {
        s.mul_add(y, -b)
    };
    let ln_prefactor = ln_beta_prefactor(a, b, x, y, lambda);
    // The fraction converges fast for x < (a + 1)/(s + 2), i.e. lambda > (a − b)/(s + 2) (the
    // form in lambda because x may be the rounded one); otherwise swap to I_y(b, a).
    if lambda > (a - b) / (s + 2.0) {
        let lower = continued_fraction_tail(a, b, x, y, lambda, ln_prefactor);
        (lower, 1.0 - lower)
    } else {
        let upper = continued_fraction_tail(b, a, y, x, -lambda, ln_prefactor);
        (1.0 - upper, upper)
    }
}

/// I_x(a, b) = prefactor·fraction, combined in log space so that a tiny prefactor times a
/// large fraction does not underflow early; clamped to [0, 1] against rounding.
fn continued_fraction_tail(a: f64, b: f64, x: f64, y: f64, lambda: f64, ln_prefactor: f64) -> f64 {
    let fraction = beta_continued_fraction(a, b, x, y, lambda);
    if !(fraction > 0.0 && fraction.is_finite()) {
        return f64::NAN;
    }
    (ln_prefactor + fraction.ln()).exp().clamp(0.0, 1.0)
}

// ---------------------------------------------------------------------------------------------
// Student's t distribution
// ---------------------------------------------------------------------------------------------

/// Student-t CDF P[T <= t] with `df` > 0 degrees of freedom (df need not be an integer).
///
/// Via the incomplete beta: P[|T| > |t|] = I_{df/(df+t²)}(df/2, 1/2), with both arguments of
/// I formed without cancellation, so either tail is accurate to ~1e-13 relative.
/// df = +∞ → Φ(t). NaN, or df <= 0 → NaN. t = ±∞ → 1 or 0.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    student_t_tails(t, df).0
}

/// (P[T <= t], P[T > t]), each to full relative accuracy.
fn student_t_tails(t: f64, df: f64) -> (f64, f64) {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return (f64::NAN, f64::NAN);
    }
    if df == f64::INFINITY {
        return normal_tails(t);
    }
    let (beyond, central) = student_t_split(t.abs(), df);
    let within = 0.5 + central;
    if t < 0.0 {
        (beyond, within)
    } else {
        (within, beyond)
    }
}

/// (P[T > u], P[0 < T <= u]) for u >= 0 and finite df > 0. The second is kept apart from the
/// 1/2 it is added to, so that a quantile search near the centre can form P[T <= t] − p as
/// (1/2 − p) − P[t < T <= 0] without cancellation.
fn student_t_split(u: f64, df: f64) -> (f64, f64) {
    if u == f64::INFINITY {
        return (0.0, 0.5);
    }
    let r = u / df.sqrt();
    if r < 1e100 {
        let (x, y) = student_beta_arguments(r);
        // P[|T| > u] = I_x(df/2, 1/2), split evenly between the two tails.
        let (i, i_complement) = beta_inc_tails(0.5 * df, 0.5, x, y);
        (0.5 * i, 0.5 * i_complement)
    } else {
        // x = df/(df + u²) < 1e-200 would underflow, or lose the tail's information, long before
        // the tail itself does (for df = 0.3 and u = 1e200 it is ~1e-60). There the power law
        // P[T > u] = df^(df/2 − 1)·u^(−df)/B(df/2, 1/2)·(1 + O(df/u²)) is exact to f64.
        let ln_beyond = (0.5 * df - 1.0) * df.ln() - df * u.ln() - ln_beta(0.5 * df, 0.5);
        let beyond = ln_beyond.exp();
        (beyond, 0.5 - beyond)
    }
}

/// (df/(df + t²), t²/(df + t²)) from r = |t|/√df, computed through r² or 1/r², whichever is
/// <= 1, so that neither overflows and the smaller of the two comes out accurate.
fn student_beta_arguments(r: f64) -> (f64, f64) {
    if r <= 1.0 {
        let r2 = r * r;
        (1.0 / (1.0 + r2), r2 / (1.0 + r2))
    } else {
        let inv2 = (1.0 / r) * (1.0 / r);
        (inv2 / (1.0 + inv2), 1.0 / (1.0 + inv2))
    }
}

/// ln of the Student-t density, for Newton steps.
fn student_t_ln_pdf(t: f64, df: f64) -> f64 {
    let r = t.abs() / df.sqrt();
    // ln(1 + r²), without overflowing r² for huge |t|.
    let ln_1p_r2 = if r < 1e150 {
        (r * r).ln_1p()
    } else {
        2.0 * r.ln()
    };
    -0.5 * (df + 1.0) * ln_1p_r2 - 0.5 * df.ln() - ln_beta(0.5 * df, 0.5)
}

/// Above this many degrees of freedom the t quantile is taken to be the normal one. They differ
/// by ~(z² + 1)/(4·df) relatively: 1.2e-7 at z = 1.96, 3.4e-5 at z = 37 (p = 1e-300).
const STUDENT_NORMAL_DF: f64 = 1e7;

/// Student-t quantile: the t with `student_t_cdf(t, df) = p`, to ~1e-13 relative.
///
/// Closed forms for df = 1 (Cauchy) and df = 2; otherwise Newton's method on ln P[T <= t] for
/// the smaller tail, started from the Cornish-Fisher expansion about the normal quantile
/// (Abramowitz & Stegun 26.7.5) and safeguarded by bisection inside a bracket whose outer end
/// comes from the t density's power-law tail. df = +∞ or df > 1e7 → `normal_quantile(p)`.
///
/// p <= 0 → −∞, p >= 1 → +∞; NaN, or df <= 0 → NaN.
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if p.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    if p == 0.5 {
        return 0.0;
    }
    if df > STUDENT_NORMAL_DF {
        return normal_quantile(p);
    }
    // Work in the smaller tail, where the probability is known to full relative accuracy
    // (1 − p is exact for p >= 1/2), and mirror by symmetry.
    let tail = p.min(1.0 - p);
    let lower = if df == 1.0 {
        // Cauchy: P[T <= t] = 1/2 + atan(t)/π, so t = −tan(π(1/2 − tail)) = −1/tan(π·tail).
        // Each form where its argument is accurate: 1/2 − tail is exact for tail >= 1/4.
        if tail >= 0.25 {
            -(PI * (0.5 - tail)).tan()
        } else {
            -1.0 / (PI * tail).tan()
        }
    } else if df == 2.0 {
        // P[T <= t] = 1/2 + t/(2√(2 + t²)) inverts to t = (2q − 1)/√(2q(1 − q)).
        (2.0 * tail - 1.0) / (2.0 * tail * (1.0 - tail)).sqrt()
    } else {
        student_t_lower_quantile(tail, df)
    };
    if p < 0.5 { lower } else { -lower }
}

/// The t <= 0 with P[T <= t] = `q`, for 0 < q < 1/2.
fn student_t_lower_quantile(q: f64, df: f64) -> f64 {
    const MAX_STEPS: usize = 200;
    /// Stop once a Newton step moves t by less than this, relatively (the step after would be
    /// of its square).
    const STEP_TOLERANCE: f64 = 1e-14;
    /// Above this q the root is near 0, where P[T <= t] ≈ 1/2 and its residual is formed from
    /// the central mass instead (see below).
    const CENTRAL: f64 = 0.25;
    let lower_cdf = |t: f64| student_t_split(-t, df).0;

    // Bracket [lo, hi] with P[T <= lo] <= q <= P[T <= hi].
    let mut hi = 0.0;
    let mut lo = student_t_tail_bound(q, df);
    // The bound holds exactly; make sure rounding has not pushed it past the root.
    while lower_cdf(lo) > q && lo > f64::MIN {
        lo = (2.0 * lo).max(f64::MIN);
    }
    if lower_cdf(lo) > q {
        return f64::NEG_INFINITY; // the quantile lies beyond the largest f64
    }

    let guess = cornish_fisher_t(q, df);
    let mut t = if lo < guess && guess < hi {
        guess
    } else {
        bisect_negative(lo, hi)
    };
    for _ in 0..MAX_STEPS {
        let (cdf, central) = student_t_split(-t, df);
        let density = student_t_ln_pdf(t, df).exp();
        // The Newton step t − g/g' and the sign of g, for
        // - near the centre: g = P[T <= t] − q = (1/2 − q) − P[t < T <= 0], where 1/2 − q is
        //   exact and the central mass is accurate, so g keeps its relative accuracy as t → 0;
        // - in the tail: g = ln P[T <= t] − ln q, nearly linear in ln|t| along the power-law
        //   tail, where Newton on P itself creeps; g/g' = ln(P/q)·P/f.
        let (newton, residual) = if q > CENTRAL {
            let g = (0.5 - q) - central;
            (t - g / density, g)
        } else {
            let g = ((cdf - q) / q).ln_1p();
            (t - g * cdf / density, g)
        };
        if residual == 0.0 {
            return t;
        }
        if residual < 0.0 {
            lo = t;
        } else {
            hi = t;
        }
        let next = if lo < newton && newton < hi {
            newton
        } else {
            bisect_negative(lo, hi)
        };
        if (next - t).abs() <= STEP_TOLERANCE * t.abs() || next == t {
            return next;
        }
        t = next;
    }
    t
}

/// A t < 0 with P[T <= t] <= q: the root of the tail asymptote. The density satisfies
/// f(t) <= K(t²/df)^(−(df+1)/2) with K = 1/(√df·B(df/2, 1/2)), so P[T <= t] <= df^(df/2 − 1)
/// |t|^(−df) / B(df/2, 1/2), and where that bound equals q the true CDF is <= q.
/// f64::MIN when the bound is beyond the f64 range.
fn student_t_tail_bound(q: f64, df: f64) -> f64 {
    let ln_abs = ((0.5 * df - 1.0) * df.ln() - q.ln() - ln_beta(0.5 * df, 0.5)) / df;
    let bound = -ln_abs.exp();
    if bound.is_finite() { bound } else { f64::MIN }
}

/// The Cornish-Fisher expansion of the t quantile about the normal one, to order df⁻⁴
/// (Abramowitz & Stegun 26.7.5). Good for moderate df; for small df in the far tail it may
/// miss badly, which the caller's bracket catches.
fn cornish_fisher_t(q: f64, df: f64) -> f64 {
    let z = normal_quantile(q);
    let z2 = z * z;
    let g1 = (z2 + 1.0) * z / 4.0;
    let g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0;
    let g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0;
    let g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0;
    z + (g1 + (g2 + (g3 + g4 / df) / df) / df) / df
}

/// The midpoint of [lo, hi] (lo < hi <= 0) in the variable −ln(1 − t): geometric for large |t|
/// (so a bracket spanning many orders of magnitude shrinks fast), arithmetic near 0.
fn bisect_negative(lo: f64, hi: f64) -> f64 {
    let s = 0.5 * ((-lo).ln_1p() + (-hi).ln_1p());
    -s.exp_m1()
}

// ---------------------------------------------------------------------------------------------
// Binomial distribution and the tests built on it
// ---------------------------------------------------------------------------------------------

/// P[X <= k] for X ~ Binomial(n, p), exact up to rounding and fast for any n:
/// P[X <= k] = I_{1−p}(n − k, k + 1), an incomplete beta whose continued fraction needs at most
/// ~1000 terms for n = 10⁷ (~10 µs), never an O(n) sum. Relative error below ~5e-13 down to
/// 1e-300 in checks against 50-digit references for n up to 10⁷.
///
/// k >= n → 1; p = 0 → 1; p = 1 → 0 (k < n); p NaN or outside [0, 1] → NaN.
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> f64 {
    if k >= n && (0.0..=1.0).contains(&p) {
        return 1.0;
    }
    binomial_tails(k as f64, n as f64, p).0
}

/// (P[X <= k], P[X > k]) for X ~ Binomial(n, p), each to full relative accuracy; k and n are
/// whole numbers held in f64 (so that n = b + c cannot overflow an integer).
fn binomial_tails(k: f64, n: f64, p: f64) -> (f64, f64) {
    if !(0.0..=1.0).contains(&p) {
        return (f64::NAN, f64::NAN);
    }
    if k >= n || p == 0.0 {
        return (1.0, 0.0);
    }
    if p == 1.0 {
        return (0.0, 1.0);
    }
    // 1 − p is exact for p >= 1/2, and for p < 1/2 p itself is the smaller, accurate argument.
    beta_inc_tails(n - k, k + 1.0, 1.0 - p, p)
}

/// McNemar's exact test: the exact two-sided binomial test at p = 1/2 on the discordant counts
/// b and c, min(1, 2·P[X <= min(b, c)]) with X ~ Binomial(b + c, 1/2). b = c (including
/// b + c = 0) → 1, since then P[X <= n/2] >= 1/2.
pub fn mcnemar_exact(b: u64, c: u64) -> f64 {
    if b == c {
        return 1.0;
    }
    let n = b as f64 + c as f64;
    let k = b.min(c) as f64;
    let two_sided = 2.0 * binomial_tails(k, n, 0.5).0;
    // f64::min would turn a NaN (counts beyond ~10¹⁵, see beta_inc) into 1.
    if two_sided.is_nan() {
        f64::NAN
    } else {
        two_sided.min(1.0)
    }
}

/// Exact one-sided p-value for "b is large": P[X >= b] with X ~ Binomial(b + c, 1/2).
/// b = 0 (including b + c = 0) → 1. (Used to test whether the candidate is worse: b = items only the current model
/// passed.) Computed as P[Y <= c] for Y = n − X ~ Binomial(n, 1/2), a lower tail, so that it
/// keeps its relative accuracy when tiny.
pub fn mcnemar_exact_greater(b: u64, c: u64) -> f64 {
    if b == 0 {
        return 1.0;
    }
    binomial_tails(c as f64, b as f64 + c as f64, 0.5).0
}

/// Distribution-free confidence interval ranks for the q-quantile of n samples, two-sided at
/// `confidence`: 1-based ranks (lower, upper) into the sorted sample, `None` for a side with
/// no finite bound (Hahn & Meeker, "Statistical Intervals", 1991, ch. 5).
///
/// With X ~ Binomial(n, q) and a = (1 − confidence)/2, the lower rank is the largest l >= 1
/// with P[X <= l − 1] <= a, and the upper rank the smallest u <= n with P[X <= u − 1] >= 1 − a
/// (evaluated as P[X >= u] <= a, which is accurate however small a is). Both are found by
/// binary search, O(log n) binomial evaluations, since P[X <= k] is monotone in k.
///
/// n = 0, or q or confidence NaN or outside [0, 1] → (None, None).
pub fn quantile_ranks(n: u64, q: f64, confidence: f64) -> (Option<u64>, Option<u64>) {
    if n == 0 || !(0.0..=1.0).contains(&q) || !(0.0..=1.0).contains(&confidence) {
        return (None, None);
    }
    let a = (1.0 - confidence) / 2.0;
    // P[X <= r − 1] and P[X >= r] for a rank r in 1..=n.
    let below = |r: u64| binomial_tails((r - 1) as f64, n as f64, q).0;
    let at_or_above = |r: u64| binomial_tails((r - 1) as f64, n as f64, q).1;

    let lower = if below(1) <= a {
        // Invariant: below(lo) <= a, and every rank above hi fails.
        let (mut lo, mut hi) = (1, n);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if below(mid) <= a {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        Some(lo)
    } else {
        None
    };

    let upper = if at_or_above(n) <= a {
        // Invariant: at_or_above(hi) <= a, and every rank below lo fails.
        let (mut lo, mut hi) = (1, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if at_or_above(mid) <= a {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(hi)
    } else {
        None
    };
    (lower, upper)
}

/// Holm-Bonferroni adjusted p-values (Holm, Scand. J. Statist. 6 (1979) 65-70), in the input
/// order: with the m non-NaN p-values sorted ascending, adj_(k) = min(1, max_{j<=k} (m − j + 1)
/// p_(j)) for 1-based j. NaN p-values stay NaN and are not counted in m. Ties keep their input
/// order and receive the same adjusted value.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let m = order.len();
    let mut adjusted = vec![f64::NAN; p.len()];
    let mut running_max = f64::NEG_INFINITY;
    for (rank, &i) in order.iter().enumerate() {
        // rank is 0-based, so m − j + 1 with j = rank + 1 is m − rank.
        let scaled = (m - rank) as f64 * p[i];
        running_max = running_max.max(scaled);
        adjusted[i] = running_max.min(1.0);
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_rel(actual: f64, expected: f64, tolerance: f64, what: &str) {
        let error = ((actual - expected) / expected).abs();
        assert!(
            error <= tolerance,
            "{what}: got {actual:e}, expected {expected:e}, relative error {error:e} > {tolerance:e}"
        );
    }

    fn assert_abs(actual: f64, expected: f64, tolerance: f64, what: &str) {
        let error = (actual - expected).abs();
        assert!(
            error <= tolerance,
            "{what}: got {actual:e}, expected {expected:e}, absolute error {error:e} > {tolerance:e}"
        );
    }

    /// Marsaglia's xorshift64: reproducible pseudo-random inputs without a dependency.
    struct XorShift(u64);

    impl XorShift {
        fn next_u64(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// Uniform in [0, 1).
        fn next_f64(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        fn below(&mut self, bound: u64) -> u64 {
            self.next_u64() % bound
        }
    }

    // Normal quantiles: the familiar table entries z(0.975) = 1.959964 and z(0.8) = 0.841621
    // (Abramowitz & Stegun, ch. 26 tables) and z(1e-10), to the full precision given in the
    // brief; all three re-derived with mpmath 1.3.0 at 50 digits, agreeing to the last digit.
    #[test]
    fn normal_quantile_matches_published_values() {
        assert_rel(normal_quantile(0.975), 1.959963984540054, 1e-15, "z(0.975)");
        assert_rel(normal_quantile(0.8), 0.8416212335729143, 1e-15, "z(0.8)");
        assert_rel(
            normal_quantile(1e-10),
            -6.361340902404056,
            1e-15,
            "z(1e-10)",
        );
        assert_rel(
            normal_quantile(0.025),
            -1.959963984540054,
            1e-15,
            "z(0.025)",
        );
        assert_eq!(normal_quantile(0.5), 0.0);
    }

    // Φ(1.96) = 0.9750021048517795 and Φ(−8) = 6.22096057427178e-16 as given in the brief;
    // both re-derived with mpmath 1.3.0 at 50 digits (6.2209605742717841e-16).
    #[test]
    fn normal_cdf_matches_published_values() {
        assert_rel(normal_cdf(1.96), 0.9750021048517795, 1e-15, "Φ(1.96)");
        assert_rel(normal_cdf(-8.0), 6.22096057427178e-16, 1e-9, "Φ(−8)");
        assert_eq!(normal_cdf(0.0), 0.5);
    }

    #[test]
    fn normal_cdf_and_quantile_invert_each_other_deep_into_the_tails() {
        for &p in &[1e-300, 1e-100, 1e-20, 1e-5, 0.01, 0.3, 0.5, 0.7, 0.99] {
            let z = normal_quantile(p);
            // One ulp of z moves Φ(z) by ~z²·ε relatively: allow a few ulps of z.
            let tolerance = 1e-15 + 4.0 * f64::EPSILON * z * z;
            assert_rel(normal_cdf(z), p, tolerance, &format!("Φ(Φ⁻¹({p:e}))"));
        }
        // The upper tail by symmetry, without forming 1 − (tiny).
        assert_rel(normal_tails(8.0).1, 6.22096057427178e-16, 1e-9, "1 − Φ(8)");
    }

    // t quantiles: the t-table entries t(0.975; 1) = 12.706, t(0.975; 10) = 2.228,
    // t(0.975; 29) = 2.045 and t(0.95; 5) = 2.015 (NIST/SEMATECH e-Handbook, §1.3.6.7.2), to
    // full precision. For df = 1 and 29 these are the digits given in the brief (agreeing with
    // mpmath 1.3.0 at 40 digits to 1e-15); for df = 5 and 10 the brief's 2.015048372669157 and 2.2281388519649385 are
    // off by 3.3e-10 and 9.6e-12 relative, so the values here are the roots of the closed-form
    // CDFs of A&S 26.7.3/26.7.4 solved with mpmath 1.3.0 at 40 digits; the test below checks
    // them against those closed forms independently of this module's incomplete beta.
    #[test]
    fn student_t_quantile_matches_published_values() {
        let cases = [
            (0.975, 1.0, 12.706204736174705),
            (0.975, 10.0, 2.2281388519862747),
            (0.975, 29.0, 2.045229642132703),
            (0.95, 5.0, 2.0150483733330242),
        ];
        for (p, df, expected) in cases {
            let what = format!("t({p}; {df})");
            assert_rel(student_t_quantile(p, df), expected, 1e-13, &what);
            assert_rel(student_t_quantile(1.0 - p, df), -expected, 1e-13, &what);
        }
    }

    /// Student-t CDF in closed form for df = 5 (A&S 26.7.3, odd df) and df = 10 (A&S 26.7.4,
    /// even df), with θ = atan(t/√df).
    fn student_t_cdf_closed_form(t: f64, df: u32) -> f64 {
        let theta = (t / f64::from(df).sqrt()).atan();
        let (sin, cos) = theta.sin_cos();
        let c2 = cos * cos;
        match df {
            5 => 0.5 + (theta + sin * cos * (1.0 + 2.0 / 3.0 * c2)) / PI,
            10 => {
                let series = 1.0
                    + c2 * (1.0 / 2.0 + c2 * (3.0 / 8.0 + c2 * (5.0 / 16.0 + c2 * 35.0 / 128.0)));
                0.5 + 0.5 * sin * series
            }
            _ => f64::NAN,
        }
    }

    #[test]
    fn student_t_quantiles_agree_with_the_closed_form_cdfs() {
        assert_abs(
            student_t_cdf_closed_form(2.0150483733330242, 5),
            0.95,
            1e-15,
            "df 5",
        );
        assert_abs(
            student_t_cdf_closed_form(2.2281388519862747, 10),
            0.975,
            1e-15,
            "df 10",
        );
        // In f64 the closed forms lose their relative accuracy in the lower tail (they add a
        // small number to 1/2 − ~1/2), so compare absolutely.
        for &t in &[-30.0, -4.0, -1.0, -0.1, 0.5, 2.0, 7.0] {
            for df in [5, 10] {
                let what = format!("cdf({t}; {df})");
                let expected = student_t_cdf_closed_form(t, df);
                assert_abs(student_t_cdf(t, f64::from(df)), expected, 2e-15, &what);
            }
        }
    }

    // P[T <= 2 | df = 3] = 1/2 + (1/π)(atan(2/√3) + (2/√3)/(1 + 4/3)) in closed form
    // (A&S 26.7.3) = 0.9303370157205784, the value in the brief (mpmath: 0.93033701572057841).
    #[test]
    fn student_t_cdf_matches_published_value() {
        assert_rel(
            student_t_cdf(2.0, 3.0),
            0.9303370157205784,
            1e-14,
            "pt(2, 3)",
        );
        let closed_form =
            0.5 + ((2.0 / 3f64.sqrt()).atan() + (2.0 / 3f64.sqrt()) / (1.0 + 4.0 / 3.0)) / PI;
        assert_rel(student_t_cdf(2.0, 3.0), closed_form, 1e-14, "A&S 26.7.3");
        assert_eq!(student_t_cdf(0.0, 7.0), 0.5);
        assert_rel(
            student_t_cdf(1.3, f64::INFINITY),
            normal_cdf(1.3),
            0.0,
            "df = ∞",
        );
    }

    #[test]
    fn student_t_quantile_inverts_the_cdf_over_a_grid() {
        for &df in &[1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0, 1000.0] {
            for i in 1..=999 {
                let p = f64::from(i) / 1000.0;
                let t = student_t_quantile(p, df);
                let back = student_t_cdf(t, df);
                assert_abs(back, p, 1e-10, &format!("cdf(quantile({p}, {df}))"));
            }
        }
    }

    #[test]
    fn student_t_quantile_holds_in_the_far_tails_and_for_fractional_df() {
        for &df in &[0.5, 1.0, 2.5, 3.0, 7.0, 50.0, 1e4, 1e6] {
            for &p in &[1e-300, 1e-100, 1e-12, 1e-4] {
                let t = student_t_quantile(p, df);
                // The tail is ~|t|^(−df)/df, so for df = 1/2 and p = 1e-300, |t| ~ 1e600.
                let beyond_f64 = -p.ln() / df > f64::MAX.ln();
                if beyond_f64 {
                    assert_eq!(t, f64::NEG_INFINITY, "t({p:e}; {df})");
                    continue;
                }
                assert!(t.is_finite(), "t({p:e}; {df}) = {t}");
                let what = format!("tail {p:e}, df {df}");
                assert_rel(student_t_cdf(t, df), p, 1e-12, &what);
                assert_rel(student_t_cdf(-t, df), 1.0 - p, 1e-15, &what);
            }
        }
        assert_eq!(
            student_t_quantile(0.3, 2e7),
            normal_quantile(0.3),
            "df > 1e7 is normal"
        );
    }

    // Binomial: Σ_{j<=3} C(10, j) = 1 + 10 + 45 + 120 = 176, so P = 176/1024 exactly;
    // P[X <= 0 | n = 100, p = 0.99] = 0.01^100 = 1e-200; P[X <= 5 | n = 20, p = 0.3] is 0.4164
    // in published cumulative binomial tables (e.g. Walpole, Myers, Myers & Ye, "Probability
    // and Statistics for Engineers and Scientists", Table A.1) and 0.41637082944748138 as an
    // exact rational sum (Python fractions). The brief's 0.41637082907 is off by 9e-10.
    #[test]
    fn binomial_cdf_matches_published_values() {
        assert_rel(
            binomial_cdf(3, 10, 0.5),
            176.0 / 1024.0,
            1e-14,
            "B(3; 10, 0.5)",
        );
        assert_rel(binomial_cdf(0, 100, 0.99), 1e-200, 1e-9, "B(0; 100, 0.99)");
        assert_rel(
            binomial_cdf(5, 20, 0.3),
            0.41637082944748138,
            1e-14,
            "B(5; 20, 0.3)",
        );
        assert_abs(binomial_cdf(5, 20, 0.3), 0.4164, 5e-5, "table value");
        assert_eq!(binomial_cdf(10, 10, 0.3), 1.0);
        assert_eq!(binomial_cdf(3, 10, 0.0), 1.0);
        assert_eq!(binomial_cdf(3, 10, 1.0), 0.0);
        assert_eq!(binomial_cdf(10, 10, 1.0), 1.0);
    }

    // ln Γ(1/2) = ln √π = 0.5723649429247001; ln Γ(100) = ln 99! = 359.1342053695754 (both
    // exact identities; mpmath 1.3.0 loggamma agrees to the last digit).
    #[test]
    fn ln_gamma_matches_published_values() {
        assert_rel(ln_gamma(0.5), 0.5723649429247001, 1e-15, "ln Γ(1/2)");
        assert_rel(ln_gamma(0.5), PI.sqrt().ln(), 1e-15, "ln √π");
        assert_rel(ln_gamma(100.0), 359.1342053695754, 1e-15, "ln Γ(100)");
        assert_abs(ln_gamma(1.0), 0.0, 1e-15, "ln Γ(1)");
        assert_abs(ln_gamma(2.0), 0.0, 1e-15, "ln Γ(2)");
        // ln 10! = ln 3628800, across the Lanczos/Stirling switch at 15: ln 14! and ln 15!.
        assert_rel(ln_gamma(11.0), 3628800f64.ln(), 1e-15, "ln 10!");
        assert_rel(ln_gamma(15.0), 87178291200f64.ln(), 1e-15, "ln 14!");
        assert_rel(ln_gamma(16.0), 1307674368000f64.ln(), 1e-15, "ln 15!");
    }

    // McNemar: 2·P[X <= 1 | n = 10] = 2·(1 + 10)/1024 = 0.021484375 exactly.
    #[test]
    fn mcnemar_exact_matches_hand_computed_values() {
        assert_rel(mcnemar_exact(1, 9), 0.021484375, 1e-14, "mcnemar(1, 9)");
        assert_rel(mcnemar_exact(9, 1), 0.021484375, 1e-14, "mcnemar(9, 1)");
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        assert_eq!(mcnemar_exact(5, 5), 1.0, "2·P > 1 is clamped");
    }

    #[test]
    fn mcnemar_exact_greater_is_the_upper_tail() {
        // P[X >= 9 | n = 10] = (10 + 1)/1024; P[X >= 1 | n = 10] = 1 − 1/1024.
        assert_rel(
            mcnemar_exact_greater(9, 1),
            11.0 / 1024.0,
            1e-14,
            "greater(9, 1)",
        );
        assert_rel(
            mcnemar_exact_greater(1, 9),
            1023.0 / 1024.0,
            1e-14,
            "greater(1, 9)",
        );
        assert_eq!(mcnemar_exact_greater(0, 0), 1.0);
        assert_eq!(mcnemar_exact_greater(0, 7), 1.0);
        // P[X >= 2000 | n = 2000] = 2^-2000 underflows; 2^-1000 does not.
        assert_rel(
            mcnemar_exact_greater(1000, 0),
            0.5f64.powi(1000),
            1e-12,
            "2^-1000",
        );
    }

    // Ranks of distribution-free 95% intervals for the 95th and 99th percentiles under the
    // equal-tailed definition above, each re-derived with exact rational binomial sums (Python
    // fractions). Three of the brief's eight pairs agree: (100, 0.99), (200, 0.95), (200, 0.99).
    // The other five do not, and cannot under this definition, because each puts more than
    // a = 0.025 in one tail (their total coverage P[l <= X <= u − 1] is still >= 95%, so they
    // look like ranks chosen for total coverage rather than for α/2 per side):
    //   n = 100,  q = 0.95: brief l = 91, but P[X <= 90] = 0.0282 > a; P[X <= 89] = 0.0115 → 90.
    //   n = 500,  q = 0.95: brief (464, 484); l = 465 since P[X <= 464] = 0.0196 <= a, and
    //                       P[X >= 484] = 0.0343 > a, P[X >= 485] = 0.0199 → u = 485.
    //   n = 500,  q = 0.99: brief l = 491, but P[X <= 490] = 0.0311 > a → 490.
    //   n = 1000, q = 0.95: brief l = 937, but P[X <= 936] = 0.0284 > a → 936.
    //   n = 1000, q = 0.99: brief u = 996, but P[X >= 996] = 0.0287 > a; P[X >= 997] = 0.0101 → 997.
    #[test]
    fn quantile_ranks_match_exact_equal_tailed_ranks() {
        let cases = [
            (100, 0.95, Some(90), Some(100)),
            (100, 0.99, Some(97), None),
            (200, 0.95, Some(184), Some(197)),
            (200, 0.99, Some(195), None),
            (500, 0.95, Some(465), Some(485)),
            (500, 0.99, Some(490), Some(500)),
            (1000, 0.95, Some(936), Some(964)),
            (1000, 0.99, Some(983), Some(997)),
        ];
        for (n, q, lower, upper) in cases {
            assert_eq!(
                quantile_ranks(n, q, 0.95),
                (lower, upper),
                "n = {n}, q = {q}"
            );
        }
    }

    #[test]
    fn quantile_ranks_keep_each_tail_within_alpha_over_two() {
        // For every n and q: P[X <= l − 1] <= a < P[X <= l], and
        // P[X >= u] <= a < P[X >= u − 1], so the interval covers with probability >= 1 − 2a.
        let a = 0.025;
        for n in (1..400).step_by(7) {
            for &q in &[0.01, 0.1, 0.5, 0.9, 0.95, 0.99] {
                let (lower, upper) = quantile_ranks(n, q, 0.95);
                let below = |r: u64| binomial_cdf(r - 1, n, q);
                if let Some(l) = lower {
                    assert!(below(l) <= a + 1e-15, "n {n} q {q} l {l}");
                    assert!(l == n || below(l + 1) > a, "n {n} q {q} l {l} not largest");
                } else {
                    assert!(below(1) > a, "n {n} q {q}: a lower rank exists");
                }
                if let Some(u) = upper {
                    assert!(1.0 - below(u) <= a + 1e-12, "n {n} q {q} u {u}");
                    assert!(
                        u == 1 || 1.0 - below(u - 1) > a,
                        "n {n} q {q} u {u} not smallest"
                    );
                } else {
                    assert!(1.0 - below(n) > a, "n {n} q {q}: an upper rank exists");
                }
            }
        }
    }

    /// The smallest n at which the q-quantile gets a finite upper rank.
    fn first_n_with_upper_rank(q: f64, confidence: f64) -> u64 {
        (1..10_000)
            .find(|&n| quantile_ranks(n, q, confidence).1.is_some())
            .unwrap_or(u64::MAX)
    }

    #[test]
    fn p99_gets_a_finite_upper_rank_once_n_is_large_enough() {
        assert_eq!(quantile_ranks(100, 0.99, 0.95).1, None);
        assert!(quantile_ranks(500, 0.99, 0.95).1.is_some());
        // An upper rank exists iff P[X <= n − 1] = 1 − q^n >= 1 − a, i.e. n >= ln a / ln q.
        let first_95 = first_n_with_upper_rank(0.99, 0.95);
        let closed_form_95 = (0.025f64.ln() / 0.99f64.ln()).ceil() as u64;
        assert_eq!(
            first_95, closed_form_95,
            "first n with a p99 upper rank at 95%: {first_95}"
        );
        assert_eq!(
            first_95, 368,
            "first n with a p99 upper rank at 95%: {first_95}"
        );
        // The often-quoted one-sided rule: at 90% two-sided (5% per side) it is n = 299.
        let first_90 = first_n_with_upper_rank(0.99, 0.90);
        assert_eq!(
            first_90, 299,
            "first n with a p99 upper rank at 90%: {first_90}"
        );
    }

    #[test]
    fn quantile_ranks_are_fast_and_sane_for_large_n() {
        let (lower, upper) = quantile_ranks(1_000_000, 0.99, 0.95);
        let (lower, upper) = (lower.unwrap_or(0), upper.unwrap_or(0));
        // Normal approximation: 990000 ∓ 1.96·√(1e6·0.99·0.01) ≈ 990000 ∓ 195.
        assert!((989_790..=989_810).contains(&lower), "lower = {lower}");
        assert!((990_190..=990_210).contains(&upper), "upper = {upper}");
        assert_eq!(quantile_ranks(0, 0.5, 0.95), (None, None));
        assert_eq!(quantile_ranks(10, f64::NAN, 0.95), (None, None));
        assert_eq!(quantile_ranks(10, 0.5, 1.5), (None, None));
    }

    #[test]
    fn holm_matches_hand_computed_values() {
        // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, max(0.06, 0.04·1) = 0.06.
        let adjusted = holm(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.03, 0.06, 0.06, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert_abs(*a, e, 1e-15, "holm");
        }
        let with_nan = holm(&[0.5, f64::NAN, 0.01]);
        assert!(with_nan[1].is_nan());
        assert_abs(with_nan[0], 0.5, 1e-15, "m excludes NaN");
        assert_abs(with_nan[2], 0.02, 1e-15, "m excludes NaN");
        assert_eq!(holm(&[0.9, 0.8]), vec![1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    /// P[X <= k] by summing the pmf in log space: the slow, obvious reference.
    fn binomial_cdf_by_summation(k: u64, n: u64, p: f64) -> f64 {
        let ln_n_factorial = ln_gamma(n as f64 + 1.0);
        (0..=k.min(n))
            .map(|j| {
                let (j, n) = (j as f64, n as f64);
                (ln_n_factorial - ln_gamma(j + 1.0) - ln_gamma(n - j + 1.0)
                    + j * p.ln()
                    + (n - j) * (-p).ln_1p())
                .exp()
            })
            .sum()
    }

    #[test]
    fn binomial_cdf_matches_direct_summation() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..5000 {
            let n = 1 + rng.below(200);
            let k = rng.below(n + 1);
            // Mix uniform p with p near 0 and 1, where the tails are extreme.
            let p = match rng.below(3) {
                0 => rng.next_f64(),
                1 => rng.next_f64() * 1e-3,
                _ => 1.0 - rng.next_f64() * 1e-3,
            };
            let expected = binomial_cdf_by_summation(k, n, p);
            assert_abs(
                binomial_cdf(k, n, p),
                expected,
                1e-10,
                &format!("B({k}; {n}, {p})"),
            );
        }
    }

    // Large-n and deep-tail references no table reaches: the pmf summed term by term in
    // 50-digit arithmetic (mpmath 1.3.0: loggamma, log1p), independently of any incomplete
    // beta. Also P[X >= 1000 | n = 1100, 1/2] = P[X <= 100 | n = 1100, 1/2] by symmetry.
    #[test]
    fn binomial_cdf_is_accurate_for_large_n_and_deep_tails() {
        let cases = [
            (0, 10_000_000, 1e-6, 4.5399702763252225e-5),
            (2, 10_000_000, 3e-6, 4.5008397920479603e-11),
            (4_990_000, 10_000_000, 0.5, 1.2724002455775865e-10),
            (9_800, 1_000_000, 0.01, 0.022212510364736511),
            (26_000, 43_512, 0.68, 1.2134615431999592e-286),
            (100, 1_100, 0.5, 1.1637249069129914e-187),
        ];
        for (k, n, p, expected) in cases {
            assert_rel(
                binomial_cdf(k, n, p),
                expected,
                1e-12,
                &format!("B({k}; {n}, {p})"),
            );
        }
        assert_rel(
            mcnemar_exact_greater(1000, 100),
            1.1637249069129914e-187,
            1e-12,
            "greater(1000, 100)",
        );
        assert_rel(
            mcnemar_exact(100, 1000),
            2.0 * 1.1637249069129914e-187,
            1e-12,
            "mcnemar(100, 1000)",
        );
    }

    #[test]
    fn beta_inc_symmetry_and_edges() {
        for &(a, b, x) in &[
            (0.5, 0.5, 0.3),
            (2.0, 3.0, 0.9),
            (50.0, 0.7, 0.99),
            (1e4, 2e4, 0.3),
        ] {
            let sum = beta_inc(a, b, x) + beta_inc(b, a, 1.0 - x);
            assert_abs(
                sum,
                1.0,
                1e-14,
                &format!("I_x({a}, {b}) + I_(1−x)({b}, {a})"),
            );
        }
        // I_x(1, 1) = x; I_x(a, 1) = x^a.
        assert_rel(beta_inc(1.0, 1.0, 0.37), 0.37, 1e-15, "I_x(1, 1)");
        assert_rel(
            beta_inc(3.5, 1.0, 0.2),
            0.2f64.powf(3.5),
            1e-14,
            "I_x(a, 1)",
        );
        assert_eq!(beta_inc(2.0, 3.0, 0.0), 0.0);
        assert_eq!(beta_inc(2.0, 3.0, 1.0), 1.0);
    }

    #[test]
    fn nothing_panics_and_bad_input_gives_nan() {
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            -1.0,
            1e-320,
            0.5,
            1.0,
            2.0,
            1e300,
        ];
        for &u in &specials {
            let _ = normal_cdf(u);
            let _ = normal_quantile(u);
            let _ = ln_gamma(u);
            let _ = binomial_cdf(3, 10, u);
            let _ = quantile_ranks(10, u, u);
            let _ = holm(&[u, 0.5]);
            for &v in &specials {
                let _ = student_t_cdf(u, v);
                let _ = student_t_quantile(u, v);
                for &w in &specials {
                    let _ = beta_inc(u, v, w);
                }
            }
        }
        assert!(normal_cdf(f64::NAN).is_nan());
        assert!(normal_quantile(f64::NAN).is_nan());
        assert_eq!(normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(normal_quantile(1.0), f64::INFINITY);
        assert!(ln_gamma(-1.0).is_nan());
        assert!(beta_inc(-1.0, 1.0, 0.5).is_nan());
        assert!(beta_inc(1.0, 1.0, 1.5).is_nan());
        assert!(student_t_cdf(1.0, 0.0).is_nan());
        assert!(student_t_quantile(0.5, -2.0).is_nan());
        assert!(binomial_cdf(3, 10, 1.5).is_nan());
        assert!(binomial_cdf(3, 10, f64::NAN).is_nan());
        assert_eq!(mcnemar_exact(u64::MAX, u64::MAX), 1.0);
        // Counts far beyond any real gate, near balance: the fraction would need ~10⁷ terms,
        // more than its budget, so the answer is NaN rather than a wrong number.
        let huge = mcnemar_exact(u64::MAX - (1 << 40), u64::MAX);
        assert!(huge.is_nan() || (0.0..=1.0).contains(&huge), "{huge}");
        // Far from balance the fraction converges fast whatever the size.
        assert_eq!(mcnemar_exact(u64::MAX / 4, u64::MAX / 2), 0.0);
    }
}
