//! Compiles proto/ with a vendored protoc (override with `$PROTOC`) and writes the descriptor set reflection
//! serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=../../proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = tonic_prost_build::Config::new();
    match std::env::var_os("PROTOC") {
        Some(protoc) => config.protoc_executable(protoc),
        None => config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?),
    };
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("cybervpn_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                "../../proto/cybervpn/bot/v1/bot.proto",
                "../../proto/cybervpn/bot/v1/admin.proto",
                "../../proto/cybervpn/bot/v1/delivery.proto",
            ],
            &["../../proto"],
        )?;
    Ok(())
}
