// Not a plugin: a shared object whose constructor writes the file $ACTIVATE_TEST_MARKER as soon
// as it is loaded. The plugin-name tests check that no policy can make the engine dlopen it.
#include <cstdio>
#include <cstdlib>

__attribute__((constructor)) static void leave_marker() {
    const char* path = std::getenv("ACTIVATE_TEST_MARKER");
    if (!path) return;
    if (FILE* f = std::fopen(path, "w")) {
        std::fputs("loaded\n", f);
        std::fclose(f);
    }
}
