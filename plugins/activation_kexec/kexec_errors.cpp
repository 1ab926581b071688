// errno of kexec_file_load(2) → an actionable message. Sources: kexec_file_load(2), the kernel's
// kernel/kexec_file.c (signature checks, lockdown), kernel/kexec.c (kexec_load_disabled) and
// arch/x86/kernel/kexec-bzimage64.c (image probing, command line size).
#include <activation_kexec/kexec_errors.hpp>
#include <cerrno>
#include <cstring>
#include <optional>
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

}  // namespace

Error kexec_error(int err, const Sysroot& sysroot, std::string_view call, size_t cmdline_size) {
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
            return fail("most often the command line (" + std::to_string(cmdline_size + 1) +
                        " bytes with its NUL) is longer than the new kernel accepts (cmdline_size "
                        "in its boot header, 2048 on x86), or the kernel or initramfs is not a "
                        "regular file; shorten the payload's cmdline setting");
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
