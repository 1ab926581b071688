// Plugin glue: the "embedded" payload source with the blobs built into this binary.
#include <payload_embedded/embedded_payload.hpp>

namespace activate::embedded {
namespace {

Result<std::unique_ptr<PayloadSource>> create_payload_source(const PluginContext& context,
                                                             Settings& settings) {
    ACTIVATE_ASSIGN(EmbeddedSettings parsed, read_embedded_settings(settings));
    return std::unique_ptr<PayloadSource>(
        std::make_unique<EmbeddedPayloadSource>(context, builtin_blobs(), std::move(parsed)));
}

}  // namespace
}  // namespace activate::embedded

ACTIVATE_DEFINE_PLUGIN(payload_embedded, "embedded", "0.1.0",
                       activate::embedded::create_payload_source, nullptr, nullptr, nullptr)
