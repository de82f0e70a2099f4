/// mimalloc instead of glibc's malloc: a request allocates and frees many small
/// buffers across tokio's threads, where glibc's arenas cost 12 % of a check's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    crm_host::cli::main()
}
