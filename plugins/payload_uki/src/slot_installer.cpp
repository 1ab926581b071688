// Bundle installation into a slot; see slot_installer.hpp.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <payload_uki/pe.hpp>
#include <payload_uki/random_reader.hpp>
#include <payload_uki/slot_installer.hpp>
#include <payload_uki/uki.hpp>
#include <payload_uki/uki_payload.hpp>
#include <vector>

namespace activate::payload_uki {
namespace {

namespace fs = std::filesystem;

Status write_all_at(int fd, const uint8_t* data, size_t size, uint64_t offset,
                    const std::string& name) {
    while (size > 0) {
        ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            return errno_error(ErrorKind::activation,
                               "writing " + name + " at offset " + std::to_string(offset),
                               n < 0 ? errno : EIO);
        data += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
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

// Leftovers of an install that died before renaming (power cut): they only take ESP space.
void remove_stale_temps(const Sysroot& sysroot, const std::string& final_path, const Log& log) {
    const std::string prefix = temp_prefix(final_path);
    auto names = sysroot.list_directory(parent_of(final_path));
    if (!names.ok()) return;
    for (const std::string& name : *names) {
        if (name.rfind(prefix, 0) != 0) continue;
        auto removed = sysroot.remove(parent_of(final_path) + "/" + name);
        if (removed.ok() && *removed)
            log.info("removed the leftover temporary file " + parent_of(final_path) + "/" + name);
    }
}

Status fsync_dir(const Sysroot& sysroot, const std::string& dir) {
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(dir, O_RDONLY | O_DIRECTORY));
    if (::fsync(fd.get()) != 0) return errno_error(ErrorKind::activation, "fsync " + dir);
    return {};
}

}  // namespace

Status SlotInstaller::install(const Slot& target, bundle::VerifyingReader& bundle,
                              const std::function<Status()>& before_first_write,
                              bundle::Progress* progress) {
    const std::string slot = std::string("slot ") + target.letter;
    const GptPartition& part = target.system;
    const std::string part_name =
        "partition " + std::to_string(part.number) + " \"" + part.name + "\" of " + target.disk;
    uint64_t offset = 0, capacity = 0, end = 0;
    if (part.sector_size == 0 ||
        __builtin_mul_overflow(part.first_lba, part.sector_size, &offset) ||
        __builtin_mul_overflow(part.size_lba, part.sector_size, &capacity) ||
        __builtin_add_overflow(offset, capacity, &end))
        return Error(ErrorKind::internal, slot + ": impossible geometry for " + part_name);

    // Everything that can be checked before writing is checked first.
    ACTIVATE_ASSIGN(UniqueFd disk, sysroot_.open(target.disk, O_RDWR));
    ACTIVATE_ASSIGN(FdGeometry geometry, fd_geometry(disk.get(), target.disk));
    if (end > geometry.size)
        return Error(ErrorKind::input, part_name + " ends at byte " + std::to_string(end) +
                                           ", beyond the disk's " + std::to_string(geometry.size) +
                                           " bytes");
    auto esp_stat = sysroot_.stat(target.esp_mount);
    if (!esp_stat.ok() || !*esp_stat || !S_ISDIR((*esp_stat)->st_mode))
        return Error(ErrorKind::activation, "the ESP mount point " + target.esp_mount +
                                                " is not a directory; mount the ESP there (setting "
                                                "`esp`)");
    if (sysroot_.is_live()) {
        // Writing into an unmounted mount point would put the UKI on the root file system,
        // where the firmware never finds it.
        auto fs_info = sysroot_.statfs(target.esp_mount);
        if (!fs_info.ok() || fs_info->f_type != MSDOS_SUPER_MAGIC)
            return Error(ErrorKind::activation, target.esp_mount +
                                                    " is not a FAT file system; is the ESP "
                                                    "mounted there (setting `esp`)?");
    }
    const std::string uki_path = uki_system_path(target);
    ACTIVATE_TRY(sysroot_.make_dirs(parent_of(uki_path)));
    remove_stale_temps(sysroot_, uki_path, log_);

    std::optional<TempUki> uki;
    bool image_done = false;
    const std::string source = bundle.source().name();
    auto report = [&] {
        if (progress) progress->update(bundle.source_offset());
    };

    for (;;) {
        ACTIVATE_ASSIGN(std::optional<bundle::MemberHeader> member, bundle.next());
        if (!member) break;
        const std::string what = source + ": member \"" + member->name + "\"";
        if (member->name == config_.bundle_image) {
            if (!member->size)
                return Error(ErrorKind::input,
                             what +
                                 " does not state its size in its local header (it was "
                                 "written with a data descriptor, e.g. by zip to a pipe), so it "
                                 "cannot be checked against " +
                                 part_name +
                                 " before writing; rebuild the bundle with `zip` to a file or "
                                 "the activate bundle writer. Nothing was written");
            if (*member->size > capacity)
                return Error(ErrorKind::input, what + " is " + std::to_string(*member->size) +
                                                   " bytes, larger than " + slot + "'s " +
                                                   part_name + " (" + std::to_string(capacity) +
                                                   " bytes). Nothing was written");
            log_.info("writing " + member->name + " (" + std::to_string(*member->size) +
                      " bytes) to " + slot + " (" + part_name + " at byte " +
                      std::to_string(offset) + ")");
            // The member passed every check that can be made before writing: from here on the
            // target slot changes.
            if (before_first_write) ACTIVATE_TRY(before_first_write());
            uint64_t written = 0;
            // While this thread writes a chunk, a second one hashes it (signed bundle) or reads
            // the next one (unsigned); see VerifyingReader::copy_to.
            auto copied = bundle.copy_to(
                [&](std::span<const uint8_t> chunk) -> Status {
                    // The reader enforces the size; belt and braces.
                    if (written + chunk.size() > capacity)
                        return Error(ErrorKind::input, what + " exceeds " + part_name);
                    ACTIVATE_TRY(write_all_at(disk.get(), chunk.data(), chunk.size(),
                                              offset + written, target.disk));
                    // Start writing this chunk back now rather than all of them at the final
                    // fsync: the disk works while the next chunks are read and hashed, and dirty
                    // memory stays small. Only a hint; the fsync below is what makes it durable.
                    ::sync_file_range(disk.get(), static_cast<off_t>(offset + written),
                                      static_cast<off_t>(chunk.size()), SYNC_FILE_RANGE_WRITE);
                    written += chunk.size();
                    report();
                    return {};
                },
                kImageWriteBuffer);
            if (!copied.ok()) return std::move(copied).error();
            if (::fsync(disk.get()) != 0)
                return errno_error(ErrorKind::activation, "fsync " + target.disk);
            image_done = true;
        } else if (member->name == config_.bundle_uki) {
            ACTIVATE_ASSIGN(TempUki tmp, create_temp(sysroot_, uki_path));
            uki.emplace(std::move(tmp));
            uint64_t at = 0;
            auto copied = bundle.copy_to([&](std::span<const uint8_t> chunk) -> Status {
                ACTIVATE_TRY(write_all_at(uki->fd(), chunk.data(), chunk.size(), at, uki->path()));
                at += chunk.size();
                report();
                return {};
            });
            if (!copied.ok()) return std::move(copied).error();
            if (::fsync(uki->fd()) != 0)
                return errno_error(ErrorKind::activation, "fsync " + uki->path());
            // A truncated or foreign file must never replace a bootable UKI.
            FdReader reader(uki->fd(), at, "bundle member \"" + member->name + "\"");
            auto image = parse_pe(reader);
            if (!image.ok())
                return Error(ErrorKind::input,
                             source + ": the UKI is unusable: " + image.error().message() + "; " +
                                 uki_path + " was left unchanged");
            if (auto sections = locate_uki_sections(*image, reader.name()); !sections.ok())
                return Error(ErrorKind::input,
                             source + ": the UKI is unusable: " + sections.error().message() +
                                 "; " + uki_path + " was left unchanged");
        } else {
            log_.debug("ignoring bundle member \"" + member->name + "\"");
            ACTIVATE_TRY(bundle.skip());
        }
        report();
    }
    if (!image_done)
        return Error(ErrorKind::input, source + " has no member \"" + config_.bundle_image +
                                           "\" (setting `bundle_image`)");
    if (!uki)
        return Error(ErrorKind::input, source + " has no member \"" + config_.bundle_uki +
                                           "\" (setting `bundle_uki`); the system image was "
                                           "written to " +
                                           slot + " but its UKI is unchanged");

    // The bundle was verified to its end (central directory included); now swap the UKI in.
    ACTIVATE_TRY(sysroot_.rename(uki->path(), uki_path));
    uki->committed();
    ACTIVATE_TRY(fsync_dir(sysroot_, parent_of(uki_path)));
    log_.info(slot + ": UKI written to " + uki_path);
    if (progress) progress->finish();
    return {};
}

}  // namespace activate::payload_uki
