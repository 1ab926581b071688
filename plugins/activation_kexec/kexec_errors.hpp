// What to tell an operator when kexec_file_load(2) fails: the errno says little on its own
// (EPERM alone has three unrelated causes), so the message names the cause and what to do.
#pragma once

#include <activate/result.hpp>
#include <activate/sysroot.hpp>
#include <string_view>

namespace activate::kexec {

// `call` names the system call ("kexec_file_load"); `cmdline_size` is the length of the staged
// command line without its NUL. For EPERM it reads /proc/sys/kernel/kexec_load_disabled and
// /sys/kernel/security/lockdown through `sysroot` to tell the causes apart.
Error kexec_error(int err, const Sysroot& sysroot, std::string_view call, size_t cmdline_size);

}  // namespace activate::kexec
