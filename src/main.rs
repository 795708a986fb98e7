/// A GraphQL response allocates per field; glibc's allocator spent a quarter of the guest list's
/// server CPU in malloc/free (BENCHMARKS.md, session 6).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = guestpass::cli::parse();
    if let Err(message) = guestpass::cli::run(cli).await {
        eprintln!("guestpass: {message}");
        std::process::exit(1);
    }
}
