// errno of kexec_file_load(2) → an actionable message. Sources: kexec_file_load(2), the kernel's
// kernel/kexec_file.c (signature checks, lockdown), kernel/kexec.c (kexec_load_disabled) and
// arch/x86/kernel/kexec-bzimage64.c (image probing, command line size, the kernel segment's
// size), kernel/kexec_core.c (sanity_check_segment_list: at most half of memory).
#include <sys/stat.h>
#include <unistd.h>

#include <activate/byte_order.hpp>
#include <activation_kexec/kexec_errors.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <sstream>
#include <string>

namespace activate::kexec {
namespace {

constexpr const char* kLoadDisabled = "/proc/sys/kernel/kexec_load_disabled";
constexpr const char* kLockdown = "/sys/kernel/security/lockdown";

std::optional<std::string> read_trimmed(const Sysroot& sysroot, const char* path) {
    auto text = sysroot.read_file(path, 4096);
    if (!text.ok()) return std::nullopt;
    std::string s = *text;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// The lockdown file lists the modes with the active one in brackets: "none [integrity]
// confidentiality" (security/lockdown/lockdown.c).
std::optional<std::string> lockdown_mode(const Sysroot& sysroot) {
    auto text = read_trimmed(sysroot, kLockdown);
    if (!text) return std::nullopt;
    const size_t open = text->find('[');
    const size_t close = text->find(']', open);
    if (open == std::string::npos || close == std::string::npos) return std::nullopt;
    return text->substr(open + 1, close - open - 1);
}

std::string signature_advice() {
    return "with Secure Boot (kernel lockdown) or CONFIG_KEXEC_SIG_FORCE the running kernel only "
           "loads kernels signed by a key in its trusted keyrings (built-in, secondary, or the "
           "platform/MOK keyring): sign the kernel with such a key, or use the reboot activation";
}

// The fields of an x86 bzImage's setup header this needs (Documentation/arch/x86/boot.rst: the
// header starts at 0x1f1; "HdrS" at 0x202 marks protocol 2.00+).
struct BootHeader {
    uint32_t cmdline_size = 255;  // 0x238, protocol 2.06+; before it the limit was 255
    uint32_t init_size = 0;       // 0x260, protocol 2.10+: memory the kernel needs to boot
};

std::optional<BootHeader> read_boot_header(int fd) {
    if (fd < 0) return std::nullopt;
    unsigned char h[0x268] = {};
    if (::pread(fd, h, sizeof h, 0) != static_cast<ssize_t>(sizeof h)) return std::nullopt;
    if (std::memcmp(h + 0x202, "HdrS", 4) != 0) return std::nullopt;
    const unsigned version = load_le16(h + 0x206);
    BootHeader b;
    if (version >= 0x206) b.cmdline_size = load_le32(h + 0x238);
    if (version >= 0x20a) b.init_size = load_le32(h + 0x260);
    return b;
}

std::optional<uint64_t> file_size(int fd) {
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
}

// MemTotal of /proc/meminfo in bytes: the kernel's totalram_pages, which the half-of-memory
// check compares against.
std::optional<uint64_t> mem_total(const Sysroot& sysroot) {
    auto text = sysroot.read_file("/proc/meminfo", 64 << 10);
    if (!text.ok()) return std::nullopt;
    std::istringstream in(*text);
    for (std::string key; in >> key;) {
        uint64_t kib = 0;
        std::string unit;
        if (key == "MemTotal:" && in >> kib >> unit && unit == "kB") return kib * 1024;
        std::getline(in, unit);
    }
    return std::nullopt;
}

std::string mib(uint64_t bytes) {
    std::ostringstream out;
    out.precision(1);
    out << std::fixed << static_cast<double>(bytes) / (1024.0 * 1024.0) << " MiB";
    return out.str();
}

// EINVAL from kexec_file_load on x86-64: the two causes an operator can fix, checked with the
// numbers the kernel compares; otherwise the facts and where to look.
std::string explain_einval(const Sysroot& sysroot, const KexecLoad& load) {
    const auto header = read_boot_header(load.kernel_fd);
    const size_t with_nul = load.cmdline_size + 1;
    if (header && with_nul > header->cmdline_size)
        return "the command line (" + std::to_string(with_nul) +
               " bytes with its NUL) is longer than the new kernel accepts (cmdline_size " +
               std::to_string(header->cmdline_size) +
               " in its boot header); shorten the payload's cmdline setting";
    // The kernel segment takes init_size in memory (kexec-bzimage64.c), the initramfs its size;
    // purgatory and the boot parameters add well under 1 MiB.
    const auto kernel_file = file_size(load.kernel_fd);
    const uint64_t kernel_mem =
        header && header->init_size ? header->init_size : kernel_file.value_or(0);
    const uint64_t initramfs = file_size(load.initramfs_fd).value_or(0);
    const uint64_t needed = kernel_mem + initramfs;
    const auto memory = mem_total(sysroot);
    const std::string sizes =
        "kernel " + mib(kernel_mem) +
        (header && header->init_size ? " in memory (init_size of its boot header)" : "") +
        ", initramfs " + mib(initramfs) + ", together " + mib(needed);
    // MemTotal is what is left of the RAM after the firmware's and the kernel's own
    // reservations (its image, the page structures): a machine needs more RAM than the MemTotal
    // it must reach, so the advice names the MemTotal and how much RAM to add, not a RAM size.
    if (memory && needed + (1u << 20) > *memory / 2) {
        const uint64_t wanted = 2 * (needed + (1u << 20));
        return "the new kernel and initramfs need more than half of this machine's memory, which "
               "the running kernel refuses to stage: " +
               sizes + " against MemTotal " + mib(*memory) + " (limit " + mib(*memory / 2) +
               "); MemTotal must be at least " + mib(wanted) + ": give the machine at least " +
               mib(wanted - *memory) + " more RAM, or use a smaller kernel or initramfs";
    }
    std::string facts = "the command line (" + std::to_string(with_nul) + " bytes with its NUL)";
    facts += header ? " fits the new kernel's limit of " + std::to_string(header->cmdline_size)
                    : " could not be checked (no bzImage boot header in the kernel)";
    facts += "; " + sizes;
    facts += memory ? ", under half of MemTotal " + mib(*memory) : ", MemTotal unknown";
    return facts + "; the kernel rejected the image for another reason: its log (dmesg) says why";
}

}  // namespace

Error kexec_error(int err, const Sysroot& sysroot, std::string_view call, const KexecLoad& load) {
    const std::string what = std::string(call) + " failed (" + std::strerror(err) + ")";
    auto fail = [&](const std::string& why) {
        return Error(ErrorKind::activation, what + ": " + why);
    };
    switch (err) {
        case EPERM: {
            if (read_trimmed(sysroot, kLoadDisabled) == "1")
                return fail(
                    std::string("kexec is disabled by the sysctl kernel.kexec_load_disabled "
                                "(") +
                    kLoadDisabled +
                    " is 1), which cannot be cleared before the next boot; use the "
                    "reboot activation");
            if (auto mode = lockdown_mode(sysroot); mode && *mode != "none")
                return fail("kernel lockdown is in \"" + *mode + "\" mode (" + kLockdown +
                            ") and the kernel is not signed by a trusted key; " +
                            signature_advice());
            return fail(std::string("the process lacks CAP_SYS_BOOT (kexec is not disabled by ") +
                        kLoadDisabled + " and " + kLockdown +
                        " shows no lockdown): run activate as root in the initial user "
                        "namespace, not inside a container");
        }
        case EKEYREJECTED:
            return fail("the kernel's signature was rejected; " + signature_advice());
        case ENOKEY:
            return fail("the kernel is unsigned or signed by an unknown key; " +
                        signature_advice());
        case EBADMSG:
            return fail("the kernel's signature is malformed; " + signature_advice());
        case ENOEXEC:
            return fail(
                "the running kernel cannot load this image format: on x86-64 it must be "
                "a bzImage with a 64-bit entry point for this architecture; check the "
                "payload's kernel (ACTIVATE_EMBED_KERNEL, or the UKI's .linux section)");
        case EINVAL:
            return fail(explain_einval(sysroot, load));
        case EBUSY:
            return fail("another kexec load or kexec is in progress; retry once it is done");
        case ENOMEM:
            return fail(
                "not enough memory to place the kernel and initramfs; free memory or "
                "use a smaller initramfs");
        case ENOSYS:
            return fail(
                "the running kernel has no kexec_file_load (built without "
                "CONFIG_KEXEC_FILE); use the reboot activation");
        case EACCES:
            return fail(
                "a security policy (IMA appraisal or another LSM) refused to let the "
                "kernel read the kernel or initramfs");
        case ETXTBSY:
            return fail(
                "the kernel or initramfs file is open for writing elsewhere; stage "
                "from a sealed or read-only file");
        case EFBIG:
            return fail("the kernel or initramfs is larger than the kernel reads (2 GiB)");
        default:
            return Error(ErrorKind::activation, what);
    }
}

}  // namespace activate::kexec
