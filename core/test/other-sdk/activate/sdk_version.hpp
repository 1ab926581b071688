// Stands in for the generated sdk_version.hpp of another activate release: the fake plugin
// `othersdk` is compiled against it (core/test/CMakeLists.txt), as a plugin built with another
// installed SDK would be, and the loader must refuse it.
#pragma once

#define ACTIVATE_SDK_VERSION "0.0.9"
#define ACTIVATE_PLUGIN_ABI 999
