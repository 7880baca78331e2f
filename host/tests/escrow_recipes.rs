//! The README's escrow recipes, run as written against stand-in `az`, `vault` and `op` programs
//! that check their arguments the way the real CLIs parse them and keep what arrives on standard
//! input: the password must arrive there, exactly, and never in any program's arguments.
// The stand-in az/vault/op programs are /bin/sh scripts.
#![cfg(unix)]

use bmc_rotate::fleet::escrow::{Escrow, Event, RunInfo};
use secrecy::SecretString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Quotes, a backslash, a dollar and an apostrophe: whatever a shell or JSON would mangle.
const PASSWORD: &str = "Esc-\"Q\\u'9$xz";

const RUN: RunInfo<'static> = RunInfo { stamp: "east-1", bmc_user: "azsbmc" };

/// One recipe from the README: the `--escrow-command` text and its `--escrow-env` names.
struct Recipe {
    name: String,
    command: String,
    env: Vec<String>,
}

fn recipes() -> Vec<Recipe> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let mut found = Vec::new();
    for part in readme.split("<!-- escrow-recipe: ").skip(1) {
        let (name, rest) = part.split_once(" -->").expect("closed marker");
        let block = rest.split("```sh\n").nth(1).and_then(|b| b.split("\n```").next()).expect("an sh block");
        let (before, command) = block.split_once("--escrow-command '").expect("--escrow-command '…'");
        let command = command.strip_suffix('\'').expect("the command ends the block").to_owned();
        let env = before.split("--escrow-env ").skip(1).map(|w| w.split_whitespace().next().unwrap().to_owned());
        found.push(Recipe { name: name.to_owned(), command, env: env.collect() });
    }
    found
}

/// Stand-ins for the vault CLIs: each logs its arguments and, for the store call the real CLI
/// reads from standard input, keeps that input; any other shape of call fails as the real one
/// would reject an unknown command.
fn stand_ins(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("calls.log");
    let programs = [
        (
            "az",
            r#"  "keyvault secret set --vault-name "*" --name bmc-east-1 --file /dev/stdin "*) cat > "$DIR/stdin" ;;
  "keyvault secret set-attributes --vault-name "*" --name bmc-east-1 "*) ;;"#,
        ),
        (
            "vault",
            r#"  "kv put -mount=secret bmc/east-1 password=-") cat > "$DIR/stdin" ;;
  "kv metadata put -mount=secret -custom-metadata=state=current bmc/east-1"|"kv delete -mount=secret bmc/east-1") ;;"#,
        ),
        (
            "op",
            r#"  "item edit bmc-east-1 --vault Ops --template /dev/stdin") cat > "$DIR/stdin" ;;
  "item edit bmc-east-1 --vault Ops state[text]="*) ;;"#,
        ),
    ];
    for (name, cases) in programs {
        let script = format!(
            "#!/bin/sh\nDIR='{dir}'\nprintf '%s %s | event=%s\\n' {name} \"$*\" \"$BMC_ROTATE_EVENT\" >> '{log}'\n\
             case \"$*\" in\n{cases}\n  *) echo \"{name}: unexpected arguments: $*\" >&2; exit 2 ;;\nesac\n",
            dir = dir.display(),
            log = log.display(),
        );
        let path = bin.join(name);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

#[tokio::test]
async fn every_readme_recipe_stores_from_stdin_and_hears_the_end() {
    let recipes = recipes();
    let names: Vec<&str> = recipes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["az", "vault", "op"], "the README's recipes");
    assert!(
        std::process::Command::new("jq").arg("--version").output().is_ok_and(|o| o.status.success()),
        "the 1Password recipe needs jq: apt-get install jq"
    );
    let password = SecretString::from(PASSWORD.to_owned());
    for recipe in recipes {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("escrow-recipe-{}", recipe.name));
        let _ = std::fs::remove_dir_all(&dir);
        let bin = stand_ins(&dir);
        // The stand-ins come first on PATH; the rest of the recipe runs as written.
        let command = format!("PATH='{}':\"$PATH\"\n{}", bin.display(), recipe.command);
        let escrow = Escrow::new(command, recipe.env.clone(), Duration::from_secs(20)).unwrap();
        escrow.store(RUN, &password).await.unwrap_or_else(|e| panic!("{}: store: {e}", recipe.name));
        let stored = std::fs::read_to_string(dir.join("stdin")).unwrap();
        if recipe.name == "op" {
            let template: serde_json::Value = serde_json::from_str(&stored).unwrap();
            assert_eq!(template["fields"][0]["id"], "password");
            assert_eq!(template["fields"][0]["value"], PASSWORD, "op: the template carries the password");
        } else {
            assert_eq!(stored, PASSWORD, "{}: exactly the password, no newline", recipe.name);
        }
        for event in [Event::Rotated, Event::RolledBack] {
            escrow.notify(RUN, event).await.unwrap_or_else(|e| panic!("{}: {event:?}: {e}", recipe.name));
        }
        let log = std::fs::read_to_string(dir.join("calls.log")).unwrap();
        let events: Vec<&str> = log.lines().map(|l| l.rsplit("event=").next().unwrap()).collect();
        assert_eq!(events, ["store", "rotated", "rolled-back"], "{}: one call per event:\n{log}", recipe.name);
        assert!(!log.contains(PASSWORD) && !log.contains("9$xz"), "{}: the password in arguments:\n{log}", recipe.name);
    }
}
