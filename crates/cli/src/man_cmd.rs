//! `portcullis man DIR` (hidden, for packagers): the manual pages, made by clap_mangen from
//! the same definitions as `--help`, so they cannot drift from the flags.

use crate::args::{Cli, ManArgs};
use crate::exit::{OrExit, UNREADABLE};
use clap::CommandFactory;
use std::path::Path;
use std::process::ExitCode;

fn write(cmd: clap::Command, section: &str, path: &Path) -> anyhow::Result<()> {
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .section(section)
        .source(format!("portcullis {}", env!("CARGO_PKG_VERSION")))
        .render(&mut page)?;
    std::fs::write(path, page).or_exit(UNREADABLE, format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(a: ManArgs) -> anyhow::Result<ExitCode> {
    let cli = Cli::command();
    let (man1, man8) = (a.out.join("man1"), a.out.join("man8"));
    for d in [&man1, &man8] {
        std::fs::create_dir_all(d).or_exit(UNREADABLE, format!("making {}", d.display()))?;
    }
    write(cli.clone(), "1", &man1.join("portcullis.1"))?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("portcullis-{}", sub.get_name());
        if sub.get_name() == "agent" {
            // The agent's package has it as a system command: /usr/sbin/portcullis-agent.
            write(
                sub.clone().name("portcullis-agent").bin_name("portcullis-agent agent"),
                "8",
                &man8.join("portcullis-agent.8"),
            )?;
            continue;
        }
        let path = man1.join(format!("{name}.1"));
        // clap takes static names (this command runs once and exits).
        let name: &'static str = Box::leak(name.into_boxed_str());
        write(sub.clone().name(name).bin_name(format!("portcullis {}", sub.get_name())), "1", &path)?;
    }
    Ok(ExitCode::SUCCESS)
}
