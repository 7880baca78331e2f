//! What the command line says about itself outside `--help`: shell completion scripts and man
//! pages, both generated from the same clap definition so they cannot drift from it.

use super::{CliError, CmdResult};
use std::path::Path;
use std::process::ExitCode;

/// The name the completions register for and the man pages are titled with.
const BIN: &str = "bmc-rotate";

/// Prints the completion script for `shell`.
pub(super) fn completions(shell: clap_complete::Shell) -> CmdResult {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut <super::Cli as clap::CommandFactory>::command(), BIN, &mut script);
    let mut script = String::from_utf8(script).map_err(|e| CliError::failed(format!("completion script: {e}")))?;
    if shell == clap_complete::Shell::Bash {
        script = fix_bash_state_names(&script);
    }
    print!("{script}");
    Ok(ExitCode::SUCCESS)
}

/// clap_complete (4.6.2 and later, up to at least 4.6.12) spells the bash state of a subcommand
/// two ways when the binary name has a hyphen: the word loop reaches `bmc__rotate__subcmd__rotate`,
/// the dispatch arms wait for `bmc__subcmd__rotate__subcmd__rotate`, so nothing past the first
/// word ever completed (clap-rs/clap#6421, #6386, #6529). Renaming the arms to the loop's
/// spelling is the upstream fix (#6428); once a release has it there is nothing left to rename
/// and this is a no-op. The CLI tests source the result in bash to hold it to that.
fn fix_bash_state_names(script: &str) -> String {
    let looped = BIN.replace('-', "__");
    let armed = BIN.replace('-', "__subcmd__");
    script.replace(&format!("{armed}__subcmd__"), &format!("{looped}__subcmd__"))
}

/// Writes `bmc-rotate.1` and one page per subcommand (`bmc-rotate-rotate.1`, …) into `out`, or
/// prints the top page when no directory is given (`bmc-rotate man | man -l -`).
pub(super) fn man(out: Option<&Path>) -> CmdResult {
    let command = <super::Cli as clap::CommandFactory>::command();
    let Some(dir) = out else {
        clap_mangen::Man::new(command)
            .render(&mut std::io::stdout().lock())
            .map_err(|e| CliError::failed(format!("man page: {e}")))?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).map_err(|e| CliError::bad_input(format!("--out {}: {e}", dir.display())))?;
    clap_mangen::generate_to(command, dir)
        .map_err(|e| CliError::failed(format!("writing man pages into {}: {e}", dir.display())))?;
    println!("man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bash_arms_are_renamed_to_the_loop_spelling_and_nothing_else() {
        let broken =
            "cmd=\"bmc__rotate__subcmd__rotate\"\n        bmc__subcmd__rotate__subcmd__rotate)\n        bmc__rotate)\n";
        let fixed = fix_bash_state_names(broken);
        assert_eq!(
            fixed,
            "cmd=\"bmc__rotate__subcmd__rotate\"\n        bmc__rotate__subcmd__rotate)\n        bmc__rotate)\n"
        );
        assert_eq!(fix_bash_state_names(&fixed), fixed);
    }
}
