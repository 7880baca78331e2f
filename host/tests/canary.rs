//! No input that may hold a credential is ever repeated: a canary password typed into every
//! place an operator could mistype it (inventory fields, addresses, secret sources on the command
//! line) must not appear in anything the tool prints.

use std::path::{Path, PathBuf};
use std::process::Command;

const CANARY: &str = "Canary-Pw-7731";

fn dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("canary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `rotate --dry-run` on an inventory, with `args` added; returns everything printed.
fn rotate(inventory: &str, args: &[&str]) -> (Option<i32>, String) {
    let file = dir().join(format!("inventory-{:x}.toml", inventory.len() ^ args.len() << 16));
    std::fs::write(&file, inventory).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bmc-rotate"))
        .args(["rotate", "--dry-run", "--inventory", file.to_str().unwrap()])
        .args(args)
        .env("BMC_ROTATE_CACHE_DIR", dir().join("cache"))
        .env("BMC_ROTATE_LOG", "trace")
        .env("CANARY_TEST_OLD", "Old-Pass-12345")
        .env("CANARY_TEST_NEW", "New-Pass-12345")
        .output()
        .unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn inventory(bmc_user: &str, address: &str, pep_endpoint: &str, cloudadmin: &str) -> String {
    format!(
        "stamp = \"lab\"\nbmc_user = \"{bmc_user}\"\nprofile = \"dell-poweredge-r760\"\n\n[pep]\nendpoints = [\"{pep_endpoint}\"]\n\
         cloudadmin = '{cloudadmin}'\n\n[[bmc]]\nname = \"node01\"\naddress = \"{address}\"\ntls = \"insecure\"\n"
    )
}

#[test]
fn a_password_typed_into_the_wrong_place_is_never_repeated() {
    let ok = ("azsbmc", "10.0.0.1", "10.0.0.9", "AZS\\CloudAdmin");
    let cases = [
        ("address with scheme and userinfo", inventory(ok.0, &format!("https://root:{CANARY}@10.0.0.1"), ok.2, ok.3)),
        ("address with userinfo", inventory(ok.0, &format!("root:{CANARY}@10.0.0.1"), ok.2, ok.3)),
        ("address with a password for a port", inventory(ok.0, &format!("{CANARY}@10.0.0.1:443"), ok.2, ok.3)),
        ("PEP endpoint with userinfo", inventory(ok.0, ok.1, &format!("admin:{CANARY}@10.0.0.9"), ok.3)),
        ("bmc_user holding user:password", inventory(&format!("azsbmc:{CANARY}"), ok.1, ok.2, ok.3)),
        ("cloudadmin holding user:password", inventory(ok.0, ok.1, ok.2, &format!("AZS\\CloudAdmin:{CANARY}"))),
        ("a password key", format!("{}password = \"{CANARY}\"\n", inventory(ok.0, ok.1, ok.2, ok.3))),
    ];
    for (what, text) in cases {
        let (code, printed) =
            rotate(&text, &["--bmc-password", "env:CANARY_TEST_OLD", "--new-password", "env:CANARY_TEST_NEW"]);
        assert_eq!(code, Some(2), "{what}: refused as bad input: {printed}");
        assert!(!printed.contains(CANARY), "{what}: the canary was printed:\n{printed}");
        assert!(printed.contains("error: ") && printed.contains("inventory-"), "{what}: names the file: {printed}");
    }
    // A password given on the command line instead of a secret source.
    let text = inventory(ok.0, ok.1, ok.2, ok.3);
    let sources = ["--bmc-password", "env:CANARY_TEST_OLD", "--new-password", "env:CANARY_TEST_NEW"];
    for flag in ["--bmc-password", "--new-password", "--cloudadmin-password", "--transcripts-password"] {
        let mut args: Vec<&str> = sources.chunks(2).filter(|pair| pair[0] != flag).flatten().copied().collect();
        args.extend([flag, CANARY]);
        let (code, printed) = rotate(&text, &args);
        assert_eq!(code, Some(2), "{flag}: {printed}");
        assert!(!printed.contains(CANARY), "{flag}: the canary was printed:\n{printed}");
    }
}
