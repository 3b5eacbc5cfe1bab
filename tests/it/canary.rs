//! goldgate canary: the real binary on simulated canary logs with a known truth.
