// Builds the Debian guest system the e2e-distro tests boot (BuildDebian() with its defaults) into
// the image cache ahead of the tests: scripts/test.sh starts it in the background right after
// configuring, so that debootstrap's downloads and dpkg runs overlap the compile instead of
// delaying the first distro test. The tests build the same image themselves if it is missing,
// and wait on its lock if this is still building it. Exit 0: built or already cached, or skipped
// (not root); 1: the build failed (its error on stderr; the tests will report it again).
#include <unistd.h>

#include <iostream>
#include <vm/images.hpp>

int main() {
    if (::geteuid() != 0) {
        std::cerr << "prepare_debian: not root, skipped (debootstrap needs root; the e2e-distro "
                     "tests skip too)\n";
        return 0;
    }
    auto debian = activate::vm::BuildDebian();
    if (!debian.ok()) {
        std::cerr << "prepare_debian: " << debian.error().message() << "\n";
        return 1;
    }
    std::cerr << "prepare_debian: " << debian->tarball.string() << " (kernel "
              << debian->kernel_version << ")\n";
    return 0;
}
