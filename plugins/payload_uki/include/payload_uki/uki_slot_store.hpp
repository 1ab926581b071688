// The "uki" slot store: A/B slots on one GPT disk, bundles installed into the inactive slot, and
// kexec payloads loaded from a slot's UKI. This is the plugin's only entry point besides the
// descriptor; tests create it directly.
#pragma once

#include <activate/plugin_api.hpp>
#include <memory>

namespace activate::uki {

Result<std::unique_ptr<SlotStore>> create_uki_slot_store(const PluginContext& context,
                                                         Settings& settings);

}  // namespace activate::uki
