// A valid shared object that is not an activate plugin (no activate_plugin_v1).
extern "C" __attribute__((visibility("default"))) int some_other_symbol() { return 42; }
