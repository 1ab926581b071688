// The shared-object entry point for the fake plugin variants.
#include <activate/plugin_api.hpp>

#define FAKE_CAT2(a, b) a##b
#define FAKE_CAT(a, b) FAKE_CAT2(a, b)
extern "C" const activate::ActivatePluginDescriptor* FAKE_CAT(activate_builtin_, FAKE_PLUGIN_IDENT)();

extern "C" __attribute__((visibility("default"))) const activate::ActivatePluginDescriptor*
activate_plugin_v1() {
    return FAKE_CAT(activate_builtin_, FAKE_PLUGIN_IDENT)();
}
