//! `--set key=value`, repeatable: values for the script's `param()` calls.

use labctl::script::Params;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct SetArgs {
    /// Set a lab parameter read with param("key", default) in the script, e.g. --set nic=enp3s0
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_pair)]
    set: Vec<(String, String)>,
}

impl SetArgs {
    pub fn params(&self) -> Params {
        self.set.iter().cloned().collect()
    }

    /// The same `--set` arguments again, for a child labctl.
    pub fn to_args(&self) -> Vec<String> {
        self.set.iter().flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]).collect()
    }
}

fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE (e.g. --set nic=enp3s0)")),
    }
}

/// Lines for `plan` and `show`: each parameter, its value and where it came from.
pub fn describe(params: &[labctl::model::Param]) -> Vec<String> {
    params
        .iter()
        .map(|p| {
            let from = if p.set { "--set".to_string() } else { format!("default, {}", p.origin) };
            format!("param {} = {} ({from})", p.name, p.value)
        })
        .collect()
}
