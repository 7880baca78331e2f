//! Which plugin file a profile gets when a directory holds two files of one plugin id: the stock
//! `hpe_ilo.wasm` and a foreign build of it (same id and version, different bytes, sorted first).

use bmc_rotate::fleet::members::PluginSet;
use bmc_rotate::fleet::profiles::{HardwareProfile, Profiles};
use bmc_tests::{runtime, wasm, with_custom_section};
use std::path::PathBuf;

const FOREIGN: &str = "a_foreign_hpe_ilo.wasm";

/// A directory with the stock hpe-ilo plugin and a foreign one; the digests of both.
fn stock_and_foreign(tag: &str) -> (PathBuf, String, String) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("selection-{tag}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stock = std::fs::read(wasm("hpe_ilo")).unwrap();
    let foreign = with_custom_section(&stock, "built-elsewhere", b"not the release build");
    std::fs::write(dir.join("hpe_ilo.wasm"), &stock).unwrap();
    std::fs::write(dir.join(FOREIGN), &foreign).unwrap();
    let digest = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    (dir.clone(), digest(&stock), digest(&foreign))
}

fn profile(pin: Option<&str>) -> HardwareProfile {
    let mut p = Profiles::built_in().get("hpe-proliant-dl380-gen10").unwrap().clone();
    p.plugin_sha256 = pin.map(str::to_owned);
    p
}

#[tokio::test]
async fn two_files_of_one_id_and_an_unpinned_profile_are_refused() {
    let (dir, stock, foreign) = stock_and_foreign("unpinned");
    let set = PluginSet::load(runtime(), &dir).await.unwrap();
    let err = set.select(&profile(None)).map(|p| p.origin.clone()).unwrap_err();
    let version = runtime().load_file(&wasm("hpe_ilo")).await.unwrap().info.version.clone();
    for part in [
        "profile `hpe-proliant-dl380-gen10` does not say which of 2 files of plugin `hpe-ilo` to use".to_owned(),
        format!("{} (version {version}, sha256 {}…)", dir.join(FOREIGN).display(), &foreign[..12]),
        format!("{} (version {version}, sha256 {}…)", dir.join("hpe_ilo.wasm").display(), &stock[..12]),
        "refusing to choose one by version".to_owned(),
        "Remove the file you did not install".to_owned(),
        "plugin_sha256 = ".to_owned(),
        "plugin_version = \"=X.Y.Z\"".to_owned(),
    ] {
        assert!(err.contains(&part), "missing `{part}` in: {err}");
    }
    // Both at the same version: an exact version does not tell them apart either.
    let mut exact = profile(None);
    exact.plugin_version = format!("={version}").parse().unwrap();
    let err = set.select(&exact).map(|p| p.origin.clone()).unwrap_err();
    assert!(err.contains("does not say which of 2 files"), "{err}");
}

#[tokio::test]
async fn a_pinned_profile_picks_the_file_with_its_digest() {
    let (dir, stock, foreign) = stock_and_foreign("pinned");
    let set = PluginSet::load(runtime(), &dir).await.unwrap();
    let chosen = set.select(&profile(Some(&foreign))).unwrap();
    assert_eq!(chosen.sha256, foreign);
    let chosen = set.select(&profile(Some(&stock))).unwrap();
    assert_eq!(chosen.sha256, stock);
    // The built-in profile as shipped pins this release's build: the stock file, the foreign one
    // ignored.
    let shipped = Profiles::built_in().get("hpe-proliant-dl380-gen10").unwrap().clone();
    let chosen = set.select(&shipped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(chosen.sha256, stock);
}

#[tokio::test]
async fn only_the_files_the_profiles_in_use_pin_are_compiled() {
    let (dir, stock, foreign) = stock_and_foreign("only-pinned");
    std::fs::write(dir.join("garbage.wasm"), b"not a component").unwrap();
    let pinned = profile(Some(&stock));
    let set = PluginSet::load_for(runtime(), &[dir.as_path()], &[&pinned]).await.unwrap();
    assert_eq!(set.select(&pinned).unwrap().sha256, stock);
    // Neither the foreign build nor the garbage was looked at past its digest (not refused, not
    // compiled), and a pin no file has says which digests were there.
    let absent = "0".repeat(64);
    let err = set.select(&profile(Some(&absent))).map(|p| p.origin.clone()).unwrap_err();
    assert!(err.contains("not compiled, as no profile in use pins them: "), "{err}");
    assert!(err.contains(&format!("{} (sha256 {}…)", dir.join(FOREIGN).display(), &foreign[..12])), "{err}");
    assert!(err.contains("garbage.wasm (sha256") && !err.contains("not a component"), "{err}");
    // A directory without a file of the plugin's id says the same.
    std::fs::remove_file(dir.join("hpe_ilo.wasm")).unwrap();
    let set = PluginSet::load_for(runtime(), &[dir.as_path()], &[&pinned]).await.unwrap();
    let err = set.select(&pinned).map(|p| p.origin.clone()).unwrap_err();
    assert!(err.contains(&format!("no file in {} has the sha256 it pins ({stock}", dir.display())), "{err}");
    assert!(err.contains("the others were not compiled: ") && err.contains(FOREIGN), "{err}");
    std::fs::copy(wasm("hpe_ilo"), dir.join("hpe_ilo.wasm")).unwrap();

    // A profile in use without a pin needs every file's plugin id: all are loaded, the garbage refused.
    let unpinned = profile(None);
    let set = PluginSet::load_for(runtime(), &[dir.as_path()], &[&pinned, &unpinned]).await.unwrap();
    let err = set.select(&profile(Some(&absent))).map(|p| p.origin.clone()).unwrap_err();
    assert!(err.contains(&format!("{}: ", dir.join("garbage.wasm").display())), "{err}");
}
