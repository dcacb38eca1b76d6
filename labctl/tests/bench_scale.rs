//! `labctl bench --scale`, run small as a user would: each size beside its
//! kernel floor, every figure present, nothing left. (Times are printed,
//! never asserted.)

mod common;

use common::{describe, Sandbox};

#[test]
fn bench_scale_builds_each_size_beside_its_floor_and_leaves_nothing() {
    let sb = Sandbox::new();
    let out = sb.labctl(["bench", "--scale", "20,40", "--json"]);
    assert!(out.status.success(), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let rows = report["rows"].as_array().expect("rows");
    let sizes: Vec<(u64, u64)> =
        rows.iter().map(|r| (r["hosts"].as_u64().unwrap(), r["nodes"].as_u64().unwrap())).collect();
    // 20 hosts, one bridge, the core router.
    assert_eq!(sizes, [(20, 22), (40, 42)]);
    for row in rows {
        assert_eq!(row["left_behind"], 0, "{row}");
        for key in ["floor_up_s", "up_s", "down_s", "max_rss_mb", "ratio_to_floor", "up_ms_per_node", "show_s"] {
            assert!(row[key].as_f64().is_some_and(|v| v > 0.0), "{key} in {row}");
        }
    }
    assert!(sb.netns_list().is_empty() && sb.labctl_state().is_empty());
    println!("{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bench_scale_takes_only_numbers_of_hosts() {
    let sb = Sandbox::new();
    let out = sb.labctl(["bench", "--scale", "20,lots"]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"lots\" is not a number of hosts"), "{stderr}");
}
