//! goldgate.toml: any text loads (with its gates checked) or is refused, never a panic.

#![no_main]

use goldgate::config::EvalConfig;
use goldgate::gate::Gate;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::scratch("eval_config", &[]);
    let path = dir.join("goldgate.toml");
    common::write(&path, data);
    let Ok(cfg) = EvalConfig::load(&path) else {
        return;
    };
    let tags = std::collections::BTreeSet::from(["billing"]);
    if let Ok(gates) = Gate::parse_all(&cfg.gates, &path, &tags) {
        for g in gates {
            let _ = g.bound.to_string();
        }
    }
    let _ = cfg.prompt();
});
