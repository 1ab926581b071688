// The SlotStore of the "uki" plugin, tying slot discovery, installation and UKI loading to the
// plugin interface; plus the plugin descriptor.
#include <unistd.h>

#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <payload_uki/config.hpp>
#include <payload_uki/slot_installer.hpp>
#include <payload_uki/slot_layout.hpp>
#include <payload_uki/slot_versions.hpp>
#include <payload_uki/uki_payload.hpp>
#include <payload_uki/uki_slot_store.hpp>

#ifndef ACTIVATE_VERSION
#define ACTIVATE_VERSION "0.0.0"
#endif

namespace activate::uki {
namespace {

class UkiSlotStore final : public SlotStore {
  public:
    UkiSlotStore(const PluginContext& context, UkiSourceConfig config)
        : sysroot_(*context.sysroot),
          logger_(context.logger),
          log_(context.logger, "uki"),
          config_(std::move(config)) {}

    Result<SlotPair> slots() const override { return discover_slots(sysroot_, config_, log_); }

    Status install(const Slot& target, const InstallRequest& request) override {
        // Re-derive the slots so that a stale or wrong `target` can never make us overwrite
        // the running system.
        ACTIVATE_ASSIGN(SlotPair now, slots());
        if (target.letter != now.target.letter || target.disk != now.target.disk ||
            target.system.first_lba != now.target.system.first_lba ||
            target.system.size_lba != now.target.system.size_lba)
            return Error(ErrorKind::internal, std::string("refusing to install into slot ") +
                                                  target.letter + ": the inactive slot is " +
                                                  now.target.letter + " (running " +
                                                  now.running.letter + ")");
        const std::string location = !request.bundle.empty() ? request.bundle : config_.bundle;
        if (location.empty())
            return Error(ErrorKind::usage,
                         "no bundle given: pass one on the command line or set "
                         "`bundle` in the payload settings");
        const std::string context =
            std::string("installing ") + location + " into slot " + target.letter;
        auto installed = install_verified(target, now.running, location, request);
        if (!installed.ok()) return std::move(installed).error().with_context(context);
        return {};
    }

    Result<std::optional<std::string>> slot_version(const Slot& slot) const override {
        ACTIVATE_ASSIGN(SlotVersions versions,
                        SlotVersions::read(sysroot_, config_.esp + "/" + config_.version_file));
        const std::optional<SlotVersion> v = versions.get(slot.letter);
        if (!v) return std::optional<std::string>();
        return std::optional<std::string>(v->version);
    }

    Result<std::optional<SlotInstallFigures>> slot_install_figures(
        const Slot& slot) const override {
        ACTIVATE_ASSIGN(SlotVersions versions,
                        SlotVersions::read(sysroot_, config_.esp + "/" + config_.version_file));
        const std::optional<SlotVersion> v = versions.get(slot.letter);
        if (!v) return std::optional<SlotInstallFigures>();
        return v->last_install;
    }

    Result<Payload> load_kernel(const Slot& slot) override {
        return load_uki_payload(sysroot_, slot, config_, log_);
    }

    std::vector<PlanStep> plan_slots() const override {
        return {
            {"find the running slot (" + config_.running_slot_pattern + ")", {"/proc/cmdline"}, {}},
            {"read the GPT: ESP and partitions \"" + config_.label_a + "\", \"" + config_.label_b +
                 "\"",
             {config_.disk},
             {}},
        };
    }

    std::vector<PlanStep> plan_install() const override {
        const std::string uki = config_.esp + "/" + config_.uki_path;
        const std::string trust =
            config_.allow_unsigned
                ? "check the bundle's signature if possible (allow_unsigned: unsigned bundles "
                  "are installed with a warning)"
                : "verify the bundle's signature against the trusted keys, compatible \"" +
                      config_.compatible +
                      "\" and version (not older than the running slot's), before writing";
        return {
            {trust,
             {config_.trusted_keys + "/*.pub", config_.esp + "/" + config_.version_file},
             {}},
            {"install the bundle into the inactive slot: \"" + config_.bundle_uki + "\" to " + uki +
                 " (temporary file, at most max_uki_size " + std::to_string(config_.max_uki_size) +
                 " bytes; " +
                 (config_.per_slot_uki() ? std::string("one UKI per slot, installed unchanged")
                                         : "\"" + config_.cmdline_placeholder + "\" -> \"" +
                                               config_.cmdline_replacement + "\" in .cmdline") +
                 "; .cmdline must match running_slot_pattern for the slot; checked before the "
                 "image when it comes first), \"" +
                 config_.bundle_image + "\" onto its partition, then the UKI renamed into place",
             {config_.bundle.empty() ? "<bundle>" : config_.bundle},
             {config_.disk + " (inactive slot's partition)", uki}},
            {"record the installed bundle version of the slot (cleared before writing)",
             {},
             {config_.esp + "/" + config_.version_file}},
        };
    }

    std::vector<PlanStep> plan_load_kernel() const override {
        return {
            {"load the target slot's UKI (.linux, .ucode + .initrd, .cmdline as written, which "
             "must name the slot) into sealed memfds",
             {config_.esp + "/" + config_.uki_path},
             {}},
        };
    }

  private:
    // Trust first (keys, signature, compatible, version), then the state record, then the
    // writes; see docs/bundle-format.md "Installing".
    Status install_verified(const Slot& target, const Slot& running, const std::string& location,
                            const InstallRequest& request) {
        if (config_.allow_unsigned)
            log_.warning(
                "allow_unsigned is set: bundles are installed even without a valid "
                "signature from a trusted key (" +
                config_.trusted_keys + ")");
        // Keys are checked before anything is downloaded.
        bundle::TrustOptions trust;
        trust.keys_origin = config_.trusted_keys;
        trust.compatible = config_.compatible;
        trust.allow_unsigned = config_.allow_unsigned;
        trust.log = &log_;
        auto keys = bundle::load_trusted_keys(sysroot_, config_.trusted_keys, &log_);
        if (keys.ok())
            trust.keys = std::move(*keys);
        else if (!config_.allow_unsigned)
            return nothing_written(std::move(keys).error());

        bundle::SourceOptions options;
        options.logger = logger_;
        options.low_speed_time = config_.download_stall_timeout;
        ACTIVATE_ASSIGN(auto source, bundle::open_source(sysroot_, location, options));
        const auto total = source->size_hint();
        ACTIVATE_ASSIGN(bundle::BundleReader reader, bundle::BundleReader::open(std::move(source)));
        auto opened = bundle::VerifyingReader::open(std::move(reader), trust);
        if (!opened.ok()) return nothing_written(std::move(opened).error());
        bundle::VerifyingReader& verified = *opened;

        const std::string version_path = config_.esp + "/" + config_.version_file;
        auto read_versions = SlotVersions::read(sysroot_, version_path);
        if (!read_versions.ok()) return nothing_written(std::move(read_versions).error());
        SlotVersions versions = std::move(*read_versions);
        if (const auto& manifest = verified.manifest()) {
            ACTIVATE_TRY(
                nothing_written(check_not_older(versions, running.letter, manifest->version,
                                                request.allow_downgrade, version_path, log_)));
            for (const std::string& member :
                 {config_.bundle_image, config_.uki_member(target.letter)})
                if (!manifest->find(member))
                    return nothing_written(
                        Error(ErrorKind::rejected, verified.source().name() +
                                                       ": the manifest lists no \"" + member +
                                                       "\" (settings bundle_image, bundle_uki)"));
            // The manifest states the image's size: an image that cannot fit is refused now,
            // before the boot entry or the version record change (the installer checks again
            // against the member itself).
            const uint64_t image_size = manifest->find(config_.bundle_image)->size;
            uint64_t capacity = 0;
            if (!__builtin_mul_overflow(target.system.size_lba, target.system.sector_size,
                                        &capacity) &&
                image_size > capacity)
                return nothing_written(
                    Error(ErrorKind::input, verified.source().name() + ": " + config_.bundle_image +
                                                " is " + std::to_string(image_size) +
                                                " bytes, larger than slot " + target.letter +
                                                "'s partition \"" + target.system.name + "\" (" +
                                                std::to_string(capacity) + " bytes)"));
        } else {
            log_.warning(verified.source().name() +
                         " has no manifest: its version is unknown and not checked");
        }
        // Runs once the installer has checked the image member too (an unsigned bundle states
        // its size only there): from here on the target changes.
        auto before_first_write = [&]() -> Status {
            if (request.before_writing) ACTIVATE_TRY(request.before_writing());
            // The slot is about to change: its old record must not outlive its old contents.
            versions.clear(target.letter);
            return versions.write(sysroot_, version_path);
        };

        bundle::ProgressOptions progress_options;
        progress_options.mode =
            request.progress ? bundle::ProgressMode::always : bundle::ProgressMode::automatic;
        bundle::Progress progress(std::string("installing slot ") + target.letter, total,
                                  progress_options);
        SlotInstaller installer(sysroot_, config_, log_);
        SlotInstallFigures figures;
        ACTIVATE_TRY(
            installer.install(target, verified, before_first_write, &progress, &running, &figures));

        if (const auto& manifest = verified.manifest()) {
            const auto& signer = verified.signer();
            versions.set(
                target.letter,
                {manifest->version.text(), manifest->compatible,
                 signer ? signer->file + " (" + signer->key.fingerprint() + ")" : "", figures});
            ACTIVATE_TRY(versions.write(sysroot_, version_path));
            log_.info(std::string("slot ") + target.letter + " holds version " +
                      manifest->version.text() + " (recorded in " + version_path + ")");
        }
        return {};
    }

    static Status nothing_written(Status status) {
        if (status.ok()) return status;
        return Error(status.error().kind(), status.error().message() + "; nothing was written");
    }

    const Sysroot& sysroot_;
    const Logger* logger_;
    Log log_;
    UkiSourceConfig config_;
};

}  // namespace

Result<std::unique_ptr<SlotStore>> create_uki_slot_store(const PluginContext& context,
                                                         Settings& settings) {
    ACTIVATE_ASSIGN(UkiSourceConfig config, read_config(settings));
    return std::unique_ptr<SlotStore>(new UkiSlotStore(context, std::move(config)));
}

}  // namespace activate::uki

ACTIVATE_DEFINE_PLUGIN(payload_uki, "uki", ACTIVATE_VERSION, nullptr, nullptr, nullptr, nullptr,
                       activate::uki::create_uki_slot_store)
