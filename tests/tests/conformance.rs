//! The conformance suite (`bmc-rotate plugin test`) judged from the outside: it must fail a plugin
//! whose exports are all `todo!()` on every scenario — a panic is never the error a scenario
//! expects — and pass the three vendor plugins on every scenario of their personas.

use bmc_lab::Persona;
use bmc_rotate::conformance::{self, Expected, Verdict};
use bmc_rotate::runtime::{ErrorKind, Plugin};
use bmc_tests::{runtime, wasm};
use std::sync::Arc;

async fn plugin(name: &str) -> Arc<Plugin> {
    runtime().load_file(&wasm(name)).await.unwrap_or_else(|e| panic!("{name}: {e}"))
}

const CAPABILITIES: &str = "capabilities within the vendor profile";

async fn suite(name: &str) -> Vec<Verdict> {
    let plugin = plugin(name).await;
    let personas = conformance::personas_for(&plugin);
    let generic = personas == [Persona::DmtfGeneric];
    // iDRAC9/10, iLO 5/6/7, XCC 1/2/3.
    assert!(
        generic || (2..=3).contains(&personas.len()),
        "{name}: every persona of its vendor, or dmtf-generic: {personas:?}"
    );
    let verdicts = conformance::run(plugin, &personas).await;
    // The manifest check, every scenario on each persona, a BMC the plugin must refuse.
    assert_eq!(verdicts.len(), 1 + personas.len() * 10 + 1, "{name}: {verdicts:#?}");
    verdicts
}

#[tokio::test]
async fn a_plugin_of_todo_fails_every_scenario() {
    let verdicts = suite("guest_todo").await;
    for v in &verdicts {
        if v.scenario == CAPABILITIES {
            // The one verdict that reads only the manifest, never calls an export: the todo guest
            // declares the SDK's baseline and no built-in profile names the id `todo`, so it is
            // within the baseline and passes.
            assert!(v.passed, "{v:#?}");
            assert_eq!(v.persona, "baseline", "{v:#?}");
            assert_eq!(v.expected, Expected::Manifest);
            continue;
        }
        assert!(!v.passed, "a panicking plugin passed `{}` on {}: {v:#?}", v.scenario, v.persona);
        assert!(v.detail.contains("panicked"), "{v:#?}");
        assert!(
            v.detail.starts_with(&format!("expected {};", v.expected)),
            "the detail says what was expected: {v:#?}"
        );
    }
    let kinds = |scenario: &str| verdicts.iter().find(|v| v.scenario == scenario).unwrap().expected;
    assert_eq!(kinds("verify accepts the password"), Expected::Success);
    assert_eq!(
        kinds("a 500 is an error, not a success"),
        Expected::Error(&[ErrorKind::Protocol, ErrorKind::Ambiguous])
    );
    assert_eq!(kinds("another vendor is refused"), Expected::Error(&[ErrorKind::Unsupported]));
    let fivehundred = verdicts.iter().find(|v| v.scenario == "a 500 is an error, not a success").unwrap();
    assert!(
        fivehundred.detail.starts_with("expected protocol or ambiguous; got: the plugin panicked"),
        "{fivehundred:#?}"
    );

    // The JSON report (`plugin test --output json`) carries the expectation.
    let json = serde_json::to_value(&verdicts).unwrap();
    let json = json.as_array().unwrap();
    let ambiguous = json.iter().find(|v| v["scenario"] == "apply-then-drop is ambiguous").unwrap();
    assert_eq!(ambiguous["expected"], "ambiguous", "{ambiguous:#}");
    assert_eq!(ambiguous["passed"], false);
    assert!(json.iter().all(|v| v["expected"].is_string()), "{json:#?}");
}

#[tokio::test]
async fn the_vendor_plugins_pass_every_scenario() {
    for name in ["dell_idrac", "hpe_ilo", "lenovo_xcc"] {
        let verdicts = suite(name).await;
        let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
        assert!(failed.is_empty(), "{name}: {failed:#?}");
    }
}

#[tokio::test]
async fn the_generic_plugin_passes_every_scenario_on_the_dmtf_persona() {
    let verdicts = suite("generic_redfish").await;
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.passed).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(verdicts.iter().skip(1).all(|v| v.persona == "dmtf-generic"), "{verdicts:#?}");
    let refusal = verdicts.last().unwrap();
    assert_eq!(refusal.scenario, "a service without AccountService is refused", "{refusal:#?}");
    assert!(refusal.detail.starts_with("`unsupported`"), "{refusal:#?}");
    let manifest = &verdicts[0];
    assert_eq!((manifest.scenario, manifest.persona.as_str()), (CAPABILITIES, "generic-redfish"), "{manifest:#?}");
}

#[tokio::test]
async fn a_plugin_of_a_vendor_the_lab_does_not_simulate_runs_against_dmtf_generic() {
    // The sample guest's vendor is `Sample`: it gets the standard persona, not a refusal.
    let plugin = plugin("guest_sample").await;
    assert_eq!(conformance::personas_for(&plugin), [Persona::DmtfGeneric]);
}
