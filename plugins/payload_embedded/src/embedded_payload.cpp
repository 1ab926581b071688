// Staging of the embedded payload. Every byte of kernel and initramfs is written once, from
// .rodata straight into a memfd; only the small /init.pb archive is built on the side.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <activate/kernel_cmdline.hpp>
#include <filesystem>
#include <payload_embedded/cpio.hpp>
#include <payload_embedded/embedded_payload.hpp>
#include <payload_embedded/zstd_frame.hpp>

namespace activate::embedded {
namespace {

constexpr const char* kProcCmdline = "/proc/cmdline";
// The appended archive is a few kilobytes; a middle level costs nothing and keeps it small.
constexpr int kAgentInitZstdLevel = 9;

std::string byte_count(size_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace

Result<EmbeddedSettings> read_embedded_settings(const Settings& settings) {
    EmbeddedSettings out;
    ACTIVATE_ASSIGN(out.cmdline, settings.string_or("cmdline", out.cmdline));
    if (out.cmdline.find('\0') != std::string::npos)
        return settings.error_at("cmdline",
                                 "contains a NUL byte, which would end the kernel "
                                 "command line; remove it");
    ACTIVATE_TRY(settings.finish());
    return out;
}

Result<std::string> staged_cmdline(std::string_view base, std::string_view running_cmdline) {
    KernelCmdline cmdline = parse_kernel_cmdline(base);
    std::vector<std::string> consoles = values_of(parse_kernel_cmdline(running_cmdline), "console");
    if (consoles.empty()) consoles.emplace_back(kFallbackConsole);
    for (std::string& console : consoles)
        cmdline.params.push_back(KernelParam{"console", std::move(console)});
    auto printed = format_kernel_cmdline(cmdline);
    if (!printed.ok())
        return std::move(printed).error().with_context(
            "building the agent's kernel command line from \"" + std::string(base) +
            "\" and the running kernel's console= parameters");
    return printed;
}

Result<UniqueFd> sealed_memfd(const char* name, const std::function<Status(int fd)>& fill) {
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd)
        return errno_error(ErrorKind::activation,
                           std::string("memfd_create(") + name + ") (needs Linux 3.17+)");
    ACTIVATE_TRY(fill(fd.get()));
    // Sealed, the bytes kexec_file_load reads are the bytes we wrote, whoever else holds the fd.
    constexpr int kSeals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
    if (::fcntl(fd.get(), F_ADD_SEALS, kSeals) != 0)
        return errno_error(ErrorKind::activation, std::string("sealing memfd ") + name);
    if (::lseek(fd.get(), 0, SEEK_SET) != 0)
        return errno_error(ErrorKind::activation, std::string("rewinding memfd ") + name);
    return fd;
}

Status append_agent_init(int fd, std::string_view agent_init) {
    const std::string what = "the AgentInit archive appended to the staged initramfs";
    // The archive is the AgentInit plus a few hundred bytes: assembled first, its exact size lets
    // zstd use a context sized for kilobytes (a level-9 context for an unknown size costs ~13 MiB
    // and tens of milliseconds to set up, see bench/README.md).
    std::string archive;
    CpioWriter cpio([&](std::string_view bytes) {
        archive.append(bytes);
        return Status{};
    });
    ACTIVATE_TRY(cpio.add_file("init.pb", 0644, agent_init));
    ACTIVATE_TRY(cpio.finish());
    ACTIVATE_ASSIGN(ZstdFrameWriter frame,
                    ZstdFrameWriter::create(fd, kAgentInitZstdLevel, what, archive.size()));
    ACTIVATE_TRY(frame.write(archive));
    return frame.finish();
}

EmbeddedPayloadSource::EmbeddedPayloadSource(const PluginContext& context, EmbeddedBlobs blobs,
                                             EmbeddedSettings settings)
    : sysroot_(*context.sysroot),
      log_(context.logger, "embedded"),
      blobs_(blobs),
      settings_(std::move(settings)) {}

Result<std::string> EmbeddedPayloadSource::cmdline() const {
    std::string running;
    if (sysroot_.exists(kProcCmdline)) {
        ACTIVATE_ASSIGN(running, sysroot_.read_file(kProcCmdline, 64 << 10));
    } else {
        log_.warning(std::string(kProcCmdline) +
                     " does not exist; the agent gets console=" + std::string(kFallbackConsole));
    }
    return staged_cmdline(settings_.cmdline, running);
}

Result<Payload> EmbeddedPayloadSource::prepare(const PayloadRequest& request) {
    if (blobs_.kernel.empty())
        return Error(
            ErrorKind::internal,
            "the embedded kernel is empty: rebuild with -DACTIVATE_EMBED_KERNEL=<bzImage>");
    Payload payload;
    ACTIVATE_ASSIGN(payload.cmdline, cmdline());
    ACTIVATE_ASSIGN(payload.kernel, sealed_memfd("activate-kernel", [&](int fd) {
                        return write_all(fd, blobs_.kernel, "the embedded kernel into a memfd");
                    }));
    const bool has_initramfs =
        !blobs_.microcode.empty() || !blobs_.initramfs.empty() || !request.agent_init.empty();
    if (has_initramfs) {
        // Order: early microcode must be first and uncompressed (the kernel looks for it at the
        // start, Documentation/arch/x86/microcode.rst), then the agent, then /init.pb on top.
        ACTIVATE_ASSIGN(
            payload.initramfs, sealed_memfd("activate-initramfs", [&](int fd) -> Status {
                ACTIVATE_TRY(
                    write_all(fd, blobs_.microcode, "the embedded microcode into a memfd"));
                ACTIVATE_TRY(
                    write_all(fd, blobs_.initramfs, "the embedded initramfs into a memfd"));
                if (request.agent_init.empty()) return {};
                return append_agent_init(fd, request.agent_init);
            }));
    }
    payload.description = "embedded agent";
    log_.info("staged embedded kernel (" + byte_count(blobs_.kernel.size()) + "), initramfs (" +
              byte_count(blobs_.microcode.size()) + " microcode + " +
              byte_count(blobs_.initramfs.size()) + " agent + " +
              byte_count(request.agent_init.size()) + " init.pb), cmdline \"" + payload.cmdline +
              "\"");
    return payload;
}

std::vector<PlanStep> EmbeddedPayloadSource::plan_prepare() const {
    std::vector<PlanStep> steps;
    steps.push_back({"build the kernel command line \"" + settings_.cmdline +
                         "\" plus the running kernel's console= parameters (or console=" +
                         std::string(kFallbackConsole) + ")",
                     {kProcCmdline},
                     {}});
    steps.push_back(
        {"copy the embedded kernel (" + byte_count(blobs_.kernel.size()) + ") into a sealed memfd",
         {"embedded:kernel"},
         {"memfd:activate-kernel"}});
    std::vector<std::string> reads;
    if (!blobs_.microcode.empty()) reads.push_back("embedded:microcode");
    reads.push_back("embedded:initramfs");
    reads.push_back("stdin:AgentInit");
    steps.push_back({"build the initramfs in a sealed memfd: microcode (" +
                         byte_count(blobs_.microcode.size()) + ") + agent initramfs (" +
                         byte_count(blobs_.initramfs.size()) +
                         ") + a zstd cpio with /init.pb (the AgentInit)",
                     std::move(reads),
                     {"memfd:activate-initramfs"}});
    return steps;
}

}  // namespace activate::embedded
