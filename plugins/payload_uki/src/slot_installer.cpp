// Bundle installation into a slot; see slot_installer.hpp.
//
// The order, for one bundle (docs/bundle-format.md "Installing"):
//  1. Before anything is written: the partition lies on the disk, the ESP is mounted, leftovers
//     of a killed run are removed, and (signed bundle) the manifest's UKI size is within
//     max_uki_size and the ESP's free space.
//  2. The UKI member, when it comes before the image: bounded by max_uki_size and the ESP's free
//     space, streamed to a temporary file next to its final place, checked and made to name the
//     target slot (make_slot_uki). A refusal here leaves the slot untouched.
//  3. The image member: its size is checked against the partition, then before_first_write()
//     (the engine disables the target's boot entry), then it is written and synced. Every 1/32 of
//     the image (at most 32 MiB) the slot is synced and the progress record on the ESP
//     (install_progress.hpp) moves to the chunks written so far; a later run of the same bundle
//     into the same slot skips them (signed bundle, stored image member) instead of starting over.
//  4. After the end of the bundle (every digest and the zip's central directory verified): the
//     UKI is renamed into place and its directory synced, and the progress record removed.
// An image-first bundle (made before the UKI came first) gets step 2 after step 3: still before
// the UKI is renamed into place and before the engine enables the boot entry, but after the slot
// was written.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <activate/bundle/local_chunks.hpp>
#include <activate/fd.hpp>
#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <future>
#include <optional>
#include <payload_uki/install_progress.hpp>
#include <payload_uki/random_reader.hpp>
#include <payload_uki/slot_installer.hpp>
#include <payload_uki/slot_uki.hpp>
#include <payload_uki/uki_payload.hpp>
#include <vector>

namespace activate::uki {
namespace {

Status write_all_at(int fd, const uint8_t* data, size_t size, uint64_t offset,
                    const std::string& name) {
    if (!pwrite_all(fd, data, size, offset))
        return errno_error(ErrorKind::activation,
                           "writing " + name + " at offset " + std::to_string(offset));
    return {};
}

std::string parent_of(const std::string& path) {
    size_t slash = path.rfind('/');
    return slash == 0 ? "/" : path.substr(0, slash);
}

std::string base_of(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The temporary UKI next to its final place; removed unless committed.
class TempUki {
  public:
    TempUki(const Sysroot& sysroot, std::string path, UniqueFd fd)
        : sysroot_(&sysroot), path_(std::move(path)), fd_(std::move(fd)) {}
    TempUki(TempUki&& o) noexcept
        : sysroot_(o.sysroot_), path_(std::move(o.path_)), fd_(std::move(o.fd_)), armed_(o.armed_) {
        o.armed_ = false;
    }
    TempUki& operator=(TempUki&&) = delete;
    ~TempUki() {
        if (armed_) (void)sysroot_->remove(path_);
    }
    int fd() const { return fd_.get(); }
    const std::string& path() const { return path_; }
    void committed() { armed_ = false; }

  private:
    const Sysroot* sysroot_;
    std::string path_;
    UniqueFd fd_;
    bool armed_ = true;
};

std::string temp_prefix(const std::string& final_path) {
    return "." + base_of(final_path) + ".tmp-";
}

Result<TempUki> create_temp(const Sysroot& sysroot, const std::string& final_path) {
    // Unique per process and call; O_EXCL refuses to reuse anything already there.
    static std::atomic<uint64_t> counter{0};
    const auto stamp =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    const std::string path = parent_of(final_path) + "/" + temp_prefix(final_path) +
                             std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
                             std::to_string(stamp % 1000000007);
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(path, O_RDWR | O_CREAT | O_EXCL, 0644));
    return TempUki(sysroot, path, std::move(fd));
}

// Removes the files in `dir` (a system path) whose names `is_leftover` accepts: temporaries of a
// run that died before renaming them (power cut, kill). They only take ESP space. Callers hold
// the activation lock, so no other run is writing them.
void remove_leftovers(const Sysroot& sysroot, const std::string& dir,
                      const std::function<bool(const std::string&)>& is_leftover, const Log& log) {
    auto names = sysroot.list_directory(dir);
    if (!names.ok()) return;
    for (const std::string& name : *names) {
        if (!is_leftover(name)) continue;
        auto removed = sysroot.remove(dir + "/" + name);
        if (removed.ok() && *removed)
            log.info("removed the leftover temporary file " + dir + "/" + name);
    }
}

// Sysroot::write_file_atomic's temporaries: "." + name + "." + mkostemp(3)'s six characters.
bool is_atomic_write_temp(const std::string& name, const std::string& final_name) {
    const std::string prefix = "." + final_name + ".";
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0)
        return false;
    for (size_t i = prefix.size(); i < name.size(); ++i)
        if (!std::isalnum(static_cast<unsigned char>(name[i]))) return false;
    return true;
}

Status fsync_dir(const Sysroot& sysroot, const std::string& dir) {
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(dir, O_RDONLY | O_DIRECTORY));
    if (::fsync(fd.get()) != 0) return errno_error(ErrorKind::activation, "fsync " + dir);
    return {};
}

Result<FreeSpace> statvfs_free_space(const Sysroot& sysroot, const std::string& dir) {
    // Through a descriptor opened inside the root, so that a symlinked ESP is measured where the
    // writes will go.
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(dir, O_RDONLY | O_DIRECTORY));
    struct statvfs st {};
    if (::fstatvfs(fd.get(), &st) != 0) return errno_error(ErrorKind::activation, "statvfs " + dir);
    const uint64_t block = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
    return FreeSpace{static_cast<uint64_t>(st.f_bavail) * block, block};
}

// One bundle into one slot, in the order described at the top of this file.
class Installation {
  public:
    Installation(const Sysroot& sysroot, const UkiSourceConfig& config, const Log& log,
                 const FreeSpaceProbe& free_space, const Slot& target, const Slot* running,
                 bundle::VerifyingReader& bundle, bundle::Progress* progress)
        : sysroot_(sysroot),
          config_(config),
          log_(log),
          free_space_(free_space),
          target_(target),
          bundle_(bundle),
          progress_(progress),
          slot_(std::string("slot ") + target.letter),
          source_(bundle.source().name()),
          uki_path_(uki_system_path(target)),
          uki_member_(config.uki_member(target.letter)),
          progress_path_(parent_of(config.esp + "/" + config.version_file) + "/" +
                         std::string(kInstallProgressFile)),
          running_(running) {}

    Status run(const std::function<Status()>& before_first_write) {
        ACTIVATE_TRY(check_target());
        ACTIVATE_TRY(prepare_esp());
        for (;;) {
            ACTIVATE_ASSIGN(std::optional<bundle::MemberHeader> member, bundle_.next());
            if (!member) break;
            if (member->name == config_.bundle_image) {
                ACTIVATE_TRY(write_image(*member, before_first_write));
            } else if (member->name == uki_member_) {
                ACTIVATE_TRY(receive_uki(*member));
            } else if (config_.per_slot_uki() &&
                       member->name == config_.uki_member(other_letter())) {
                log_.info("skipping \"" + member->name + "\", the UKI of slot " + other_letter());
                ACTIVATE_TRY(bundle_.skip());
            } else {
                log_.debug("ignoring bundle member \"" + member->name + "\"");
                ACTIVATE_TRY(bundle_.skip());
            }
            report();
        }
        if (!image_written_)
            return Error(ErrorKind::input, source_ + " has no member \"" + config_.bundle_image +
                                               "\" (setting `bundle_image`)");
        if (!uki_)
            return Error(ErrorKind::input, source_ + " has no member \"" + uki_member_ +
                                               "\" (setting `bundle_uki`); the system image was "
                                               "written to " +
                                               slot_ + " but its UKI is unchanged");
        return commit_uki();
    }

    // The image's bytes: fetched, reused from this disk, and (the rest) kept from an earlier run.
    SlotInstallFigures figures() const { return {image_size_, fetched_, reused_}; }

  private:
    char other_letter() const { return target_.letter == 'A' ? 'B' : 'A'; }
    // Progress counts bundle bytes; local chunks count as the bundle bytes the skip over them
    // will pass, so that a long run of reused chunks moves the progress instead of one jump.
    void report() {
        if (progress_) progress_->update(bundle_.source_offset() + passed_over_);
    }
    // Refusals before the slot's partition changed say so.
    Error unchanged(ErrorKind kind, const std::string& message) const {
        return Error(kind, image_started_ ? message : message + "; nothing was written");
    }

    // Step 1: the partition and the ESP mount point.
    Status check_target() {
        const GptPartition& part = target_.system;
        part_name_ = "partition " + std::to_string(part.number) + " \"" + part.name + "\" of " +
                     target_.disk;
        uint64_t end = 0;
        if (part.sector_size == 0 ||
            __builtin_mul_overflow(part.first_lba, part.sector_size, &offset_) ||
            __builtin_mul_overflow(part.size_lba, part.sector_size, &capacity_) ||
            __builtin_add_overflow(offset_, capacity_, &end))
            return Error(ErrorKind::internal, slot_ + ": impossible geometry for " + part_name_);
        ACTIVATE_ASSIGN(disk_, sysroot_.open(target_.disk, O_RDWR));
        ACTIVATE_ASSIGN(FdGeometry geometry, fd_geometry(disk_.get(), target_.disk));
        if (end > geometry.size)
            return Error(ErrorKind::input, part_name_ + " ends at byte " + std::to_string(end) +
                                               ", beyond the disk's " +
                                               std::to_string(geometry.size) + " bytes");
        auto esp_stat = sysroot_.stat(target_.esp_mount);
        if (!esp_stat.ok() || !*esp_stat || !S_ISDIR((*esp_stat)->st_mode))
            return Error(ErrorKind::activation,
                         "the ESP mount point " + target_.esp_mount +
                             " is not a directory; mount the ESP there (setting `esp`)");
        if (sysroot_.is_live()) {
            // Writing into an unmounted mount point would put the UKI on the root file system,
            // where the firmware never finds it.
            auto fs_info = sysroot_.statfs(target_.esp_mount);
            if (!fs_info.ok() || fs_info->f_type != MSDOS_SUPER_MAGIC)
                return Error(ErrorKind::activation, target_.esp_mount +
                                                        " is not a FAT file system; is the ESP "
                                                        "mounted there (setting `esp`)?");
        }
        return {};
    }

    // Step 1: leftovers removed, and the UKI's size from the manifest checked.
    Status prepare_esp() {
        ACTIVATE_TRY(sysroot_.make_dirs(parent_of(uki_path_)));
        const std::string uki_temps = temp_prefix(uki_path_);
        remove_leftovers(
            sysroot_, parent_of(uki_path_),
            [&](const std::string& name) { return name.rfind(uki_temps, 0) == 0; }, log_);
        const std::string versions = config_.esp + "/" + config_.version_file;
        ACTIVATE_TRY(sysroot_.make_dirs(parent_of(versions)));
        remove_leftovers(
            sysroot_, parent_of(versions),
            [&](const std::string& name) {
                return is_atomic_write_temp(name, base_of(versions)) ||
                       is_atomic_write_temp(name, base_of(progress_path_));
            },
            log_);
        if (const auto& manifest = bundle_.manifest())
            if (const bundle::ManifestMember* m = manifest->find(uki_member_))
                ACTIVATE_TRY(check_uki_room(m->size, "the manifest"));
        return {};
    }

    // The bound on the UKI's bytes: max_uki_size, and what the ESP can hold.
    struct UkiBound {
        uint64_t bytes = 0;
        bool by_esp = false;  // the ESP's free space, not max_uki_size, is the tighter bound
        FreeSpace esp;
    };
    Result<UkiBound> uki_bound() const {
        const std::string dir = parent_of(uki_path_);
        ACTIVATE_ASSIGN(FreeSpace esp,
                        free_space_ ? free_space_(dir) : statvfs_free_space(sysroot_, dir));
        UkiBound b{config_.max_uki_size, false, esp};
        if (esp.bytes < b.bytes) b = {esp.bytes, true, esp};
        return b;
    }
    std::string esp_full(const FreeSpace& esp, uint64_t needed) const {
        return "the ESP " + target_.esp_mount + " (" + parent_of(uki_path_) + ") has " +
               std::to_string(esp.bytes) + " bytes free, but " + slot_ + "'s UKI \"" + uki_member_ +
               "\" needs " + std::to_string(needed) +
               " bytes there (its old UKI is replaced only after the new one is complete); "
               "free space on the ESP or ship a smaller UKI";
    }

    // A UKI of `size` bytes (stated by `origin`) must be within max_uki_size and fit the ESP.
    Status check_uki_room(uint64_t size, const std::string& origin) const {
        if (size > config_.max_uki_size)
            return unchanged(ErrorKind::input, source_ + ": the UKI \"" + uki_member_ + "\" is " +
                                                   std::to_string(size) + " bytes (" + origin +
                                                   "), more than max_uki_size (" +
                                                   std::to_string(config_.max_uki_size) +
                                                   " bytes)");
        ACTIVATE_ASSIGN(UkiBound bound, uki_bound());
        const uint64_t block = bound.esp.block_size != 0 ? bound.esp.block_size : 1;
        const uint64_t needed = size / block * block + (size % block != 0 ? block : 0);
        if (needed > bound.esp.bytes)
            return unchanged(ErrorKind::activation, source_ + ": " + esp_full(bound.esp, needed));
        return {};
    }

    // Step 2 (or after step 3 for an image-first bundle).
    Status receive_uki(const bundle::MemberHeader& member) {
        if (member.size) ACTIVATE_TRY(check_uki_room(*member.size, "its zip header"));
        // An unsigned member may not state its size (data descriptor) or inflate without bound:
        // nothing beyond the bound reaches the ESP.
        ACTIVATE_ASSIGN(UkiBound bound, uki_bound());
        ACTIVATE_ASSIGN(TempUki tmp, create_temp(sysroot_, uki_path_));
        uki_.emplace(std::move(tmp));
        uint64_t at = 0;
        auto copied = bundle_.copy_to([&](std::span<const uint8_t> chunk) -> Status {
            if (chunk.size() > bound.bytes - at)
                return unchanged(
                    bound.by_esp ? ErrorKind::activation : ErrorKind::input,
                    source_ + ": the UKI \"" + member.name + "\" grows beyond " +
                        std::to_string(bound.bytes) + " bytes; " +
                        (bound.by_esp ? esp_full(bound.esp, at + chunk.size())
                                      : "max_uki_size is " + std::to_string(config_.max_uki_size) +
                                            " bytes") +
                        ". Stopped after " + std::to_string(at) + " bytes; " + uki_path_ +
                        " was left unchanged");
            ACTIVATE_TRY(write_all_at(uki_->fd(), chunk.data(), chunk.size(), at, uki_->path()));
            at += chunk.size();
            report();
            return {};
        });
        if (!copied.ok()) return unchanged(copied.error().kind(), copied.error().message());
        // A truncated or foreign file, or one that does not name the slot, never replaces a
        // bootable UKI.
        auto made = make_slot_uki(uki_->fd(), at, target_.letter, !config_.per_slot_uki(), config_,
                                  "bundle member \"" + member.name + "\"", log_);
        if (!made.ok())
            return unchanged(ErrorKind::input, source_ + ": the UKI is unusable for " + slot_ +
                                                   ": " + made.error().message() + "; " +
                                                   uki_path_ + " was left unchanged");
        if (::fsync(uki_->fd()) != 0)
            return errno_error(ErrorKind::activation, "fsync " + uki_->path());
        log_.info(slot_ + ": UKI \"" + member.name + "\" checked, .cmdline \"" + made->cmdline +
                  "\"");
        return {};
    }

    // Step 3, in four parts: the member is checked against the slot (check_image_member), the
    // point an earlier run reached is looked up (recorded_resume), the target is taken out of
    // service and the verified, still-present start passed over (start_image), then the rest
    // streams through an ImageWriter (written, synced and recorded as it goes), fetched or, for
    // a download, partly copied from this disk (write_delta).
    Status write_image(const bundle::MemberHeader& member,
                       const std::function<Status()>& before_first_write) {
        const std::string what = source_ + ": member \"" + member.name + "\"";
        ACTIVATE_TRY(check_image_member(member, what));
        // A signed image can resume where an earlier run of the same bundle into this slot
        // stopped; any other record is about other bytes and goes before the first write.
        const bundle::ManifestMember* chunks = nullptr;
        std::string manifest_sha256;
        if (bundle_.manifest() && bundle_.manifest_digest()) {
            chunks = bundle_.manifest()->find(member.name);
            manifest_sha256 = bundle::to_hex(*bundle_.manifest_digest());
        }
        const uint64_t resume = recorded_resume(member, chunks, manifest_sha256);
        log_.info("writing " + member.name + " (" + std::to_string(*member.size) + " bytes) to " +
                  slot_ + " (" + part_name_ + " at byte " + std::to_string(offset_) + ")");
        // The member passed every check that can be made before writing: from here on the
        // target slot changes.
        if (before_first_write) ACTIVATE_TRY(before_first_write());
        image_started_ = true;
        ACTIVATE_ASSIGN(const uint64_t written, start_image(member, chunks, resume, what));

        ImageWriter writer(*this, member, chunks, manifest_sha256, written, what);
        ACTIVATE_TRY(writer.begin());
        ACTIVATE_ASSIGN(std::vector<LocalChunk> local,
                        chunks ? plan_delta(*chunks, written / chunks->chunk_size, what)
                               : Result<std::vector<LocalChunk>>(std::vector<LocalChunk>{}));
        if (!local.empty()) {
            ACTIVATE_TRY(write_delta(*chunks, local, written,
                                     [&](std::span<const uint8_t> chunk, bool write) {
                                         return writer.put(chunk, write);
                                     }));
        } else {
            // While this thread writes a chunk, a second one hashes it (signed bundle) or reads
            // the next one (unsigned); see VerifyingReader::copy_to.
            auto copied = bundle_.copy_to(
                [&](std::span<const uint8_t> chunk) { return writer.put(chunk, true); },
                kImageWriteBuffer);
            if (!copied.ok()) return std::move(copied).error();
            fetched_ = writer.written() - written;
        }
        ACTIVATE_TRY(writer.sync());
        log_.info(slot_ + ": " + std::to_string(fetched_) + " bytes of \"" + member.name +
                  "\" fetched, " + std::to_string(reused_) + " reused from this disk, " +
                  std::to_string(writer.written() - fetched_ - reused_) +
                  " kept from an earlier run");
        if (progress_)
            progress_->set_summary_note(", image: " + std::to_string(fetched_) +
                                        " bytes fetched, " + std::to_string(reused_) + " reused");
        // Killed from here until the UKI is in place, a next run skips the whole image.
        ACTIVATE_TRY(writer.record_complete());
        image_size_ = writer.written();
        image_written_ = true;
        return {};
    }

    // The image member fits the slot and states its size; nothing was written.
    Status check_image_member(const bundle::MemberHeader& member, const std::string& what) const {
        if (!member.size)
            return unchanged(ErrorKind::input,
                             what +
                                 " does not state its size in its local header (it was written "
                                 "with a data descriptor, e.g. by zip to a pipe), so it cannot be "
                                 "checked against " +
                                 part_name_ +
                                 " before writing; rebuild the bundle with `zip` to a file or "
                                 "the activate bundle writer");
        if (*member.size > capacity_)
            return unchanged(ErrorKind::input, what + " is " + std::to_string(*member.size) +
                                                   " bytes, larger than " + slot_ + "'s " +
                                                   part_name_ + " (" + std::to_string(capacity_) +
                                                   " bytes)");
        if (!uki_)
            log_.warning(source_ + " lists \"" + member.name + "\" before the UKI \"" +
                         uki_member_ + "\", so the UKI is checked late: after " + slot_ +
                         " was written (still before it replaces the old UKI and before the "
                         "boot entry is enabled). Bundles listing the UKI first are checked "
                         "before anything is written");
        return {};
    }

    // How many chunks of the image an earlier run of this same bundle into this slot recorded
    // as verified and synced (install_progress.hpp); 0 without such a record.
    uint64_t recorded_resume(const bundle::MemberHeader& member,
                             const bundle::ManifestMember* chunks,
                             const std::string& manifest_sha256) const {
        uint64_t resume = 0;
        if (auto record = read_install_progress(sysroot_, progress_path_, log_)) {
            if (chunks)
                resume = resumable_chunks(*record, manifest_sha256, target_.letter, offset_,
                                          member.name, chunks->chunk_size, chunks->chunk_count());
            if (resume == 0)
                log_.info("discarding " + progress_path_ + ": it records an install of another " +
                          "bundle, member or slot");
        }
        return resume;
    }

    // After the first write was allowed: the image's bytes already in place (the first
    // `resume` chunks, read back and checked again, then passed over in the bundle), or 0 with
    // the stale record removed. Returns where the writes continue.
    Result<uint64_t> start_image(const bundle::MemberHeader& member,
                                 const bundle::ManifestMember* chunks, uint64_t resume,
                                 const std::string& what) {
        if (resume > 0) {
            ACTIVATE_ASSIGN(resume, still_in_place(*chunks, resume));
        }
        uint64_t written = 0;
        if (resume > 0) {
            ACTIVATE_ASSIGN(bool skipped, bundle_.skip_chunks(resume));
            if (skipped) {
                written = std::min<uint64_t>(resume * chunks->chunk_size, *member.size);
                log_.info(slot_ + ": resuming the install: chunks 0.." +
                          std::to_string(resume - 1) + " (" + std::to_string(written) +
                          " bytes) were verified and synced by " + "an earlier run (" +
                          progress_path_ + "); continuing at byte " + std::to_string(written) +
                          " without fetching them again");
            } else {
                log_.warning(what + " is compressed (or has a data descriptor), so the install " +
                             "cannot continue mid-stream where an earlier run stopped; writing " +
                             "it from its start");
                resume = 0;
            }
        }
        if (resume == 0) {
            auto removed = sysroot_.remove(progress_path_);
            if (!removed.ok()) return std::move(removed).error();
        }
        return written;
    }

    // Puts the image's verified chunks into the slot in order and keeps the progress record
    // (install_progress.hpp) behind them. The ordering rules:
    // - a chunk is written only after it was verified (the reader's or check_local_chunks'
    //   digest), and each put() is one whole manifest chunk;
    // - the record promises only what is durable: a record point syncs the slot first, and the
    //   sync covers exactly the bytes written before it started;
    // - the syncs run on a thread of their own (a sync waits for everything written so far,
    //   which on a slow device is most of the install, while the chunks keep streaming), at most
    //   one at a time: the next record point waits for the last (so every point is recorded,
    //   also the last before a stalled download);
    // - the first record of a run replaces the file atomically, later ones overwrite it in
    //   place (FAT and power cuts);
    // - destroyed early (an error), it waits for a sync still running before what it uses goes.
    class ImageWriter {
      public:
        ImageWriter(Installation& in, const bundle::MemberHeader& member,
                    const bundle::ManifestMember* chunks, const std::string& manifest_sha256,
                    uint64_t written, const std::string& what)
            : in_(in),
              chunks_(chunks),
              manifest_sha256_(manifest_sha256),
              name_(member.name),
              what_(what),
              size_(*member.size),
              written_(written),
              recorded_(written),
              // Every 1/32 of the image, at least a chunk and at most 32 MiB apart: a crash
              // loses at most that much, and the syncs it costs stay few.
              record_every_(chunks ? std::max<uint64_t>(chunks->chunk_size,
                                                        std::min<uint64_t>(size_ / 32, 32 << 20))
                                   : 0) {}

        // Created now, next to the version record the engine's hook just wrote, so that the
        // ESP's directory does not change while the image streams.
        Status begin() { return chunks_ ? record(written_) : Status(); }

        // One verified chunk into the slot at written() (`write` false: the slot already holds
        // exactly these bytes).
        Status put(std::span<const uint8_t> chunk, bool write) {
            // The reader enforces the size; belt and braces.
            if (written_ + chunk.size() > in_.capacity_)
                return Error(ErrorKind::input, what_ + " exceeds " + in_.part_name_);
            if (!write) {
                written_ += chunk.size();
                in_.report();
                return {};
            }
            ACTIVATE_TRY(write_all_at(in_.disk_.get(), chunk.data(), chunk.size(),
                                      in_.offset_ + written_, in_.target_.disk));
            // Start writing this chunk back now rather than all of them at the final fsync: the
            // disk works while the next chunks are read and hashed, and dirty memory stays
            // small. Only a hint; the fsync in sync() is what makes it durable.
            ::sync_file_range(in_.disk_.get(), static_cast<off_t>(in_.offset_ + written_),
                              static_cast<off_t>(chunk.size()), SYNC_FILE_RANGE_WRITE);
            written_ += chunk.size();
            if (chunks_ && written_ - recorded_ >= record_every_ && written_ < size_) {
                if (syncing_.valid()) ACTIVATE_TRY(syncing_.get());
                syncing_ = std::async(std::launch::async, [this, bytes = written_]() -> Status {
                    if (::fdatasync(in_.disk_.get()) != 0)
                        return errno_error(ErrorKind::activation, "fdatasync " + in_.target_.disk);
                    return record(bytes);
                });
                recorded_ = written_;
            }
            in_.report();
            return {};
        }

        // Every byte put is durable.
        Status sync() {
            if (syncing_.valid()) ACTIVATE_TRY(syncing_.get());
            if (::fsync(in_.disk_.get()) != 0)
                return errno_error(ErrorKind::activation, "fsync " + in_.target_.disk);
            return {};
        }

        // The whole image is in place (after sync()).
        Status record_complete() { return chunks_ ? record(size_) : Status(); }

        uint64_t written() const { return written_; }

      private:
        Status record(uint64_t bytes) {
            InstallProgress p{
                manifest_sha256_, in_.target_.letter, in_.offset_, name_, chunks_->chunk_size, 0};
            p.chunks = bytes == size_ ? chunks_->chunk_count() : bytes / chunks_->chunk_size;
            if (record_fd_) return update_install_progress(record_fd_.get(), in_.progress_path_, p);
            ACTIVATE_TRY(write_install_progress(in_.sysroot_, in_.progress_path_, p));
            ACTIVATE_ASSIGN(record_fd_, open_install_progress(in_.sysroot_, in_.progress_path_));
            return {};
        }

        Installation& in_;
        const bundle::ManifestMember* chunks_;  // null: unsigned, nothing recorded
        const std::string manifest_sha256_, name_, what_;
        const uint64_t size_;
        uint64_t written_, recorded_;
        const uint64_t record_every_;
        UniqueFd record_fd_;
        // Last: destroyed first, its destructor waits for a running sync, which uses the above.
        std::future<Status> syncing_;
    };

    // Where a chunk of the image is found locally with the manifest's digest.
    enum class LocalChunk : uint8_t { none, in_target, in_running };

    // Where chunk `index` of `member` lies on this disk, in the target or the running slot; null
    // when the partition is too small to hold it.
    std::optional<bundle::ChunkLocation> location(LocalChunk where,
                                                  const bundle::ManifestMember& member,
                                                  uint64_t index) const {
        const bool target = where == LocalChunk::in_target;
        const uint64_t capacity = target ? capacity_ : running_capacity_;
        if (member.chunk_offset(index) + member.chunk_length(index) > capacity) return std::nullopt;
        return bundle::ChunkLocation{
            index, target ? disk_.get() : running_disk_.get(),
            target ? &target_.disk : &running_->disk,
            (target ? offset_ : running_offset_) + member.chunk_offset(index)};
    }

    // Delta (docs/bundle-format.md "Delta installs"): which chunks from `first` on the target
    // slot already holds, or the running slot holds at the same offset, with the manifest's
    // digests. A block image changed in place keeps its unchanged chunks at their offsets, so
    // only the aligned chunk is looked at. The target is read first (a chunk found there need
    // not be written), then the running slot for the chunks still missing; each is read in
    // order and hashed on every core (check_local_chunks). Empty when nothing is found (the
    // image streams as usual) or the member cannot be entered mid-way (deflated, data
    // descriptor).
    Result<std::vector<LocalChunk>> plan_delta(const bundle::ManifestMember& member, uint64_t first,
                                               const std::string& what) {
        if (!running_ || first >= member.chunk_count()) return std::vector<LocalChunk>{};
        // Looking costs reading and hashing up to both slots whole before the first byte is
        // written: worth it against a download, not against reading a local bundle.
        if (!bundle_.source().over_network()) return std::vector<LocalChunk>{};
        if (!bundle_.can_skip_chunks()) {
            log_.info(what + " is compressed (or has a data descriptor): no delta install, " +
                      "every chunk is fetched");
            return std::vector<LocalChunk>{};
        }
        const GptPartition& part = running_->system;
        if (part.sector_size == 0 ||
            __builtin_mul_overflow(part.first_lba, part.sector_size, &running_offset_) ||
            __builtin_mul_overflow(part.size_lba, part.sector_size, &running_capacity_))
            return std::vector<LocalChunk>{};
        ACTIVATE_ASSIGN(running_disk_, sysroot_.open(running_->disk, O_RDONLY));
        std::vector<LocalChunk> local(member.chunk_count(), LocalChunk::none);
        uint64_t found = 0;
        for (LocalChunk where : {LocalChunk::in_target, LocalChunk::in_running}) {
            std::vector<bundle::ChunkLocation> candidates;
            for (uint64_t i = first; i < member.chunk_count(); ++i)
                if (local[i] == LocalChunk::none)
                    if (auto at = location(where, member, i)) candidates.push_back(*at);
            ACTIVATE_TRY(bundle::check_local_chunks(
                member, candidates,
                [&](uint64_t index, std::span<const uint8_t>, bool matches) -> Result<bool> {
                    if (matches) {
                        local[index] = where;
                        ++found;
                    }
                    return true;
                }));
        }
        if (found == 0) return std::vector<LocalChunk>{};
        log_.info(slot_ + ": " + std::to_string(found) + " of " +
                  std::to_string(member.chunk_count() - first) + " chunks of \"" + member.name +
                  "\" are already on this disk with the manifest's digests; fetching the rest");
        return local;
    }

    // Writes the image from `written` on: each chunk the plan found locally is read and hashed
    // again just before it is written (that hash is its verification: nothing unverified is
    // written; check_local_chunks reads and hashes the next ones on every core meanwhile), and
    // passed over in the bundle; a run of such chunks is one skip (one Range request for a
    // download). Every other chunk is fetched and verified by the reader.
    Status write_delta(const bundle::ManifestMember& member, std::vector<LocalChunk> local,
                       uint64_t written,
                       const std::function<Status(std::span<const uint8_t>, bool)>& put) {
        const uint64_t count = member.chunk_count();
        uint64_t next = written / member.chunk_size;  // the next chunk to put
        std::vector<bundle::ChunkLocation> reuse;
        for (uint64_t i = next; i < count; ++i)
            if (local[i] != LocalChunk::none) reuse.push_back(*location(local[i], member, i));
        std::vector<uint8_t> buf(member.chunk_size);
        uint64_t skip = 0;
        // Fetches chunks `next`..`end`-1, none of them local, after passing over the local ones
        // put since the last fetch.
        auto fetch_until = [&](uint64_t end) -> Status {
            if (next >= end) return {};
            if (skip > 0) {
                ACTIVATE_ASSIGN(bool skipped, bundle_.skip_chunks(skip));
                if (!skipped)
                    return Error(ErrorKind::internal, source_ + ": could not pass over " +
                                                          std::to_string(skip) + " chunks of \"" +
                                                          member.name + "\" found locally");
                skip = 0;
                passed_over_ = 0;
            }
            // A download asks for just this run of chunks.
            if (end < count) bundle_.will_read_chunks(end - next);
            for (; next < end; ++next) {
                const size_t length = member.chunk_length(next);
                size_t got = 0;
                while (got < length) {
                    ACTIVATE_ASSIGN(
                        size_t n, bundle_.read(std::span<uint8_t>(buf.data() + got, length - got)));
                    if (n == 0)
                        return Error(ErrorKind::rejected, source_ + ": member \"" + member.name +
                                                              "\" ends inside chunk " +
                                                              std::to_string(next));
                    got += n;
                }
                ACTIVATE_TRY(put(std::span<const uint8_t>(buf.data(), length), true));
                fetched_ += length;
            }
            return {};
        };
        ACTIVATE_TRY(bundle::check_local_chunks(
            member, reuse,
            [&](uint64_t index, std::span<const uint8_t> bytes, bool matches) -> Result<bool> {
                ACTIVATE_TRY(fetch_until(index));
                if (!matches) {
                    // Changed since the plan was made: fetched with the run that follows it.
                    local[index] = LocalChunk::none;
                    uint64_t end = index + 1;
                    while (end < count && local[end] == LocalChunk::none) ++end;
                    ACTIVATE_TRY(fetch_until(end));
                    return true;
                }
                passed_over_ += bytes.size();
                ACTIVATE_TRY(put(bytes, local[index] == LocalChunk::in_running));
                reused_ += bytes.size();
                ++skip;
                ++next;
                return true;
            }));
        ACTIVATE_TRY(fetch_until(count));
        if (skip > 0) {
            ACTIVATE_ASSIGN(bool skipped, bundle_.skip_chunks(skip));
            if (!skipped)
                return Error(ErrorKind::internal, source_ + ": could not pass over the last " +
                                                      std::to_string(skip) + " chunks of \"" +
                                                      member.name + "\" found locally");
            passed_over_ = 0;
        }
        return {};
    }

    // How many of the first `count` chunks of `member` the slot still holds, read back and
    // checked against the manifest's digests (on every core): the progress record says they
    // were synced, but the inactive slot may have been written since (by hand, by another
    // tool), and nothing unverified may be left in place. Local reads and hashing cost far less
    // than fetching.
    Result<uint64_t> still_in_place(const bundle::ManifestMember& member, uint64_t count) {
        std::vector<bundle::ChunkLocation> recorded;
        for (uint64_t i = 0; i < count; ++i)
            if (auto at = location(LocalChunk::in_target, member, i)) recorded.push_back(*at);
        uint64_t held = 0;
        ACTIVATE_TRY(bundle::check_local_chunks(
            member, recorded,
            [&](uint64_t index, std::span<const uint8_t>, bool matches) -> Result<bool> {
                if (matches) held = index + 1;
                return matches;
            }));
        if (held < count)
            log_.warning(progress_path_ + " says chunks 0.." + std::to_string(count - 1) +
                         " of \"" + member.name + "\" are in " + slot_ + ", but chunk " +
                         std::to_string(held) + " there differs from the manifest (the slot " +
                         "was written since); continuing from chunk " + std::to_string(held));
        return held;
    }

    // Step 4: the bundle was verified to its end (central directory included).
    Status commit_uki() {
        ACTIVATE_TRY(sysroot_.rename(uki_->path(), uki_path_));
        uki_->committed();
        ACTIVATE_TRY(fsync_dir(sysroot_, parent_of(uki_path_)));
        log_.info(slot_ + ": UKI written to " + uki_path_);
        // The install is complete: nothing is left to resume.
        if (auto removed = sysroot_.remove(progress_path_); !removed.ok())
            return std::move(removed).error();
        if (progress_) progress_->finish();
        return {};
    }

    const Sysroot& sysroot_;
    const UkiSourceConfig& config_;
    const Log& log_;
    const FreeSpaceProbe& free_space_;
    const Slot& target_;
    bundle::VerifyingReader& bundle_;
    bundle::Progress* progress_;
    const std::string slot_, source_, uki_path_, uki_member_, progress_path_;

    std::string part_name_;
    uint64_t offset_ = 0, capacity_ = 0;
    UniqueFd disk_;
    std::optional<TempUki> uki_;
    // Delta: the running slot's partition (null when the caller named none).
    const Slot* running_ = nullptr;
    UniqueFd running_disk_;
    uint64_t running_offset_ = 0, running_capacity_ = 0;
    // Image bytes copied from this disk (running or target slot) and fetched from the bundle.
    uint64_t reused_ = 0, fetched_ = 0, image_size_ = 0;
    // Delta: bytes of local chunks written since the last skip, which the next skip passes over.
    uint64_t passed_over_ = 0;
    bool image_started_ = false, image_written_ = false;
};

}  // namespace

SlotInstaller::SlotInstaller(const Sysroot& sysroot, const UkiSourceConfig& config, const Log& log,
                             FreeSpaceProbe free_space)
    : sysroot_(sysroot), config_(config), log_(log), free_space_(std::move(free_space)) {}

Status SlotInstaller::install(const Slot& target, bundle::VerifyingReader& bundle,
                              const std::function<Status()>& before_first_write,
                              bundle::Progress* progress, const Slot* running,
                              SlotInstallFigures* figures) {
    Installation installation(sysroot_, config_, log_, free_space_, target, running, bundle,
                              progress);
    ACTIVATE_TRY(installation.run(before_first_write));
    if (figures) *figures = installation.figures();
    return {};
}

}  // namespace activate::uki
