// What to tell an operator when kexec_file_load(2) fails: the errno says little on its own
// (EPERM alone has three unrelated causes), so the message names the cause and what to do.
#pragma once

#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <string_view>

namespace activate::kexec {

// What was handed to kexec_file_load, for the messages that depend on it.
struct KexecLoad {
    size_t cmdline_size = 0;  // the staged command line without its NUL
    int kernel_fd = -1;       // read (pread, at fixed offsets) for the bzImage boot header
    int initramfs_fd = -1;    // -1: none
};

// `call` names the system call ("kexec_file_load"). For EPERM it reads
// /proc/sys/kernel/kexec_load_disabled and /sys/kernel/security/lockdown through `sysroot` to
// tell the causes apart. For EINVAL it checks the two causes an operator can act on, from the
// kernel's boot header (cmdline_size, init_size) and /proc/meminfo: a command line longer than
// the new kernel accepts, or kernel and initramfs needing more than half of the machine's memory,
// which the kernel refuses (sanity_check_segment_list() in kernel/kexec_core.c). The message
// names the sizes it compared.
Error kexec_error(int err, const Sysroot& sysroot, std::string_view call, const KexecLoad& load);

}  // namespace activate::kexec
