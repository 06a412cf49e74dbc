//! Anomaly detection with Double Exponential Smoothing (Holt), as nDPI's `ndpi_des_*` and
//! ntopng's `DESCounter` (REFERENCE.md §4). Pure: feed values, get the forecast and the band.
//!
//! * forecast `f = α·x + (1−α)(f′ + trend′)`, trend `= β(f − f′) + (1−β)·trend′`;
//! * band `= ρ·√(SSE/n)`, the squared-error sum rolling every [`SSE_WINDOW`] samples;
//! * bounds `lower = floor(max(0, f − band))`, `upper = round(f + band + 0.5)`;
//! * an anomaly is a value outside `[lower, upper]`; only the first sample is warm-up.

use serde::{Deserialize, Serialize};

/// Samples after which the squared-error sum rolls over (`MAX_SQUARE_ERROR_ITERATIONS`).
pub const SSE_WINDOW: u32 = 64;

/// Parameters of one series.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DesConfig {
    /// Level smoothing α.
    pub alpha: f64,
    /// Trend smoothing β.
    pub beta: f64,
    /// Band width ρ (1.96 = 95%, nDPI's significance 0.05).
    pub rho: f64,
}

impl Default for DesConfig {
    fn default() -> Self {
        Self {
            alpha: 0.9,
            beta: 0.035,
            rho: 1.96,
        }
    }
}

/// What one sample gave.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct DesOutcome {
    /// The value observed.
    pub value: f64,
    /// The forecast (smoothed level).
    pub forecast: f64,
    /// Half-width of the band.
    pub band: f64,
    /// Lowest normal value.
    pub lower: f64,
    /// Highest normal value.
    pub upper: f64,
    /// Whether the value falls outside `[lower, upper]` (never on the first sample).
    pub anomaly: bool,
}

/// A DES series' state without its configuration: (samples seen, [forecast, trend, sse,
/// sse_next], roll-up), for shard snapshots (crate::shard).
pub type DesState = (u32, [f64; 4], u32);

/// One DES series.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Des {
    cfg: DesConfig,
    n: u32,
    last_forecast: f64,
    last_trend: f64,
    sse: f64,
    sse_next: f64,
    rollup: u32,
}

impl Des {
    /// A new series.
    pub fn new(cfg: DesConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// `(samples, [forecast, trend, sse, sse_next], roll-up)`: the series without its
    /// configuration, for shard snapshots (crate::shard).
    pub fn state(&self) -> DesState {
        (
            self.n,
            [self.last_forecast, self.last_trend, self.sse, self.sse_next],
            self.rollup,
        )
    }

    /// Sets the state of [`Des::state`], keeping the configuration.
    pub fn set_state(&mut self, (n, [f, t, sse, next], rollup): DesState) {
        self.n = n;
        self.last_forecast = f;
        self.last_trend = t;
        self.sse = sse;
        self.sse_next = next;
        self.rollup = rollup;
    }

    /// Adds `value` (`ndpi_des_add_value`).
    pub fn push(&mut self, value: f64) -> DesOutcome {
        let DesConfig { alpha, beta, rho } = self.cfg;
        let forecast = if self.n == 0 {
            self.last_trend = 0.0;
            value
        } else {
            let f = alpha * value + (1.0 - alpha) * (self.last_forecast + self.last_trend);
            self.last_trend = beta * (f - self.last_forecast) + (1.0 - beta) * self.last_trend;
            f
        };
        let err = value - forecast;
        self.sse += err * err;
        self.sse_next += err * err;
        let band = if self.n > 0 {
            let obs = if self.n < SSE_WINDOW {
                self.n + 1
            } else {
                self.n % SSE_WINDOW + SSE_WINDOW + 1
            };
            rho * (self.sse / f64::from(obs)).sqrt()
        } else {
            0.0
        };
        let warm = self.n > 0;
        self.n = self.n.saturating_add(1);
        self.last_forecast = forecast;
        self.rollup += 1;
        if self.rollup == SSE_WINDOW {
            self.sse = self.sse_next;
            self.sse_next = 0.0;
            self.rollup = 0;
        }
        let lower = (forecast - band).max(0.0).floor();
        let upper = (forecast + band + 0.5).round();
        DesOutcome {
            value,
            forecast,
            band,
            lower,
            upper,
            anomaly: warm && (value < lower || value > upper),
        }
    }

    /// Samples seen.
    pub fn samples(&self) -> u32 {
        self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn matches_hand_computed_values() {
        let mut d = Des::new(DesConfig::default());
        // Sample 1: warm-up, forecast = value, band 0.
        let o = d.push(10.0);
        assert!(close(o.forecast, 10.0) && close(o.band, 0.0) && !o.anomaly);
        // Sample 2: f = 0.9·12 + 0.1·(10 + 0) = 11.8; trend = 0.035·1.8 = 0.063;
        // err = 0.2, SSE = 0.04, n = 2: band = 1.96·√0.02 = 0.277185858...
        let o = d.push(12.0);
        assert!(close(o.forecast, 11.8), "{o:?}");
        assert!(close(o.band, 1.96 * 0.02f64.sqrt()), "{o:?}");
        assert!(close(o.lower, 11.0) && close(o.upper, 13.0), "{o:?}");
        assert!(!o.anomaly);
        // Sample 3: f = 0.9·13 + 0.1·(11.8 + 0.063) = 12.8863; err = 0.1137;
        // SSE = 0.04 + 0.01292769 = 0.05292769, n = 3: band = 1.96·√(0.05292769/3).
        let o = d.push(13.0);
        assert!(close(o.forecast, 12.8863), "{o:?}");
        let band = 1.96 * (0.052_927_69f64 / 3.0).sqrt();
        assert!(close(o.band, band), "{o:?} vs {band}");
        assert!(close(o.lower, (12.8863 - band).floor()));
        assert!(close(o.upper, (12.8863 + band + 0.5).round()));
        // Sample 4, a jump to 100: trend = 0.035·1.0863 + 0.965·0.063 = 0.0988155;
        // f = 90 + 0.1·(12.8863 + 0.0988155) = 91.29851155; err = 8.70148845;
        // band = 1.96·√((0.05292769 + err²)/4) ≈ 8.5304; upper = round(100.33) = 100.
        // With α = 0.9 the forecast absorbs most of a jump: a young series flags nothing.
        let o = d.push(100.0);
        assert!(close(o.forecast, 91.298_511_55), "{o:?}");
        let sse: f64 = 0.052_927_69 + 8.701_488_45f64.powi(2);
        assert!((o.band - 1.96 * (sse / 4.0).sqrt()).abs() < 1e-6, "{o:?}");
        assert!(
            close(o.lower, 82.0) && close(o.upper, 100.0) && !o.anomaly,
            "{o:?}"
        );
    }

    #[test]
    fn a_flat_series_is_never_anomalous_and_a_slow_ramp_is_followed() {
        let mut d = Des::new(DesConfig::default());
        for _ in 0..200 {
            assert!(!d.push(50.0).anomaly);
        }
        let mut flagged = 0;
        for i in 0..100 {
            flagged += u32::from(d.push(50.0 + f64::from(i) * 0.1).anomaly);
        }
        assert!(flagged < 5, "a slow ramp is followed: {flagged}");
        assert!(d.push(5000.0).anomaly);
        assert_eq!(d.samples(), 301);
    }
}
