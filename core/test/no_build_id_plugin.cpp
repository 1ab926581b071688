// A plugin with a hand-written entry point and no build identity, as plugins were written before
// ACTIVATE_DEFINE_PLUGIN emitted both: the loader refuses it instead of trusting its layout.
#include <activate/plugin_api.hpp>

extern "C" __attribute__((visibility("default"))) const activate::ActivatePluginDescriptor*
activate_plugin_v1() {
    static const activate::ActivatePluginDescriptor d{activate::kPluginAbiVersion,
                                                      "nobuildid",
                                                      "0.0.1",
                                                      nullptr,
                                                      nullptr,
                                                      nullptr,
                                                      nullptr,
                                                      nullptr};
    return &d;
}
