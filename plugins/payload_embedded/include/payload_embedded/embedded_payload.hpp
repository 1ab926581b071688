// The "embedded" payload source: the kernel and agent initramfs built into the binary, staged as
// sealed memfds with the AgentInit appended to the initramfs as /init.pb.
#pragma once

#include <activate/plugin_api.hpp>
#include <functional>
#include <payload_embedded/embedded_blobs.hpp>
#include <string>
#include <string_view>

namespace activate::embedded {

inline constexpr std::string_view kDefaultCmdline = "quiet init=/init";
// Used when the running kernel names no console, so the agent's output still goes somewhere.
inline constexpr std::string_view kFallbackConsole = "ttyS0,115200";

struct EmbeddedSettings {
    std::string cmdline = std::string(kDefaultCmdline);
};

// Reads the plugin's policy section strictly (the only key is `cmdline`). Any line without NUL
// is accepted: the console parameters are added to its parsed form, which always prints back.
Result<EmbeddedSettings> read_embedded_settings(const Settings& settings);

// The staged command line: `base` plus every console= of the running kernel (in order, so the
// last one stays /dev/console as it is now), or console=ttyS0,115200 when it has none.
Result<std::string> staged_cmdline(std::string_view base, std::string_view running_cmdline);

// A memfd filled by `fill` and sealed against any change (F_SEAL_SHRINK, F_SEAL_GROW,
// F_SEAL_WRITE, F_SEAL_SEAL; memfd_create(2)), positioned at offset 0.
Result<UniqueFd> sealed_memfd(const char* name, const std::function<Status(int fd)>& fill);

// Appends one zstd frame holding a newc archive with exactly init.pb (mode 0100644) to `fd`.
Status append_agent_init(int fd, std::string_view agent_init);

class EmbeddedPayloadSource : public PayloadSource {
  public:
    EmbeddedPayloadSource(const PluginContext& context, EmbeddedBlobs blobs,
                          EmbeddedSettings settings);

    bool accepts_agent_init() const override { return true; }
    Result<Payload> prepare(const PayloadRequest& request) override;
    std::vector<PlanStep> plan_prepare() const override;

  private:
    Result<std::string> cmdline() const;

    const Sysroot& sysroot_;
    Log log_;
    EmbeddedBlobs blobs_;
    EmbeddedSettings settings_;
};

}  // namespace activate::embedded
