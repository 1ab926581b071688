// Extraction of a slot UKI's sections for kexec.
#include <fcntl.h>
#include <unistd.h>

#include <payload_uki/pe.hpp>
#include <payload_uki/random_reader.hpp>
#include <payload_uki/sealed_memfd.hpp>
#include <payload_uki/slot_layout.hpp>
#include <payload_uki/uki.hpp>
#include <payload_uki/uki_payload.hpp>

namespace activate::uki {

std::string uki_system_path(const Slot& slot) {
    std::string esp = slot.esp_mount;
    while (!esp.empty() && esp.back() == '/') esp.pop_back();
    return esp + "/" + slot.uki_path;
}

Result<Payload> load_uki_payload(const Sysroot& sysroot, const Slot& slot,
                                 const UkiSourceConfig& config, const Log& log) {
    const std::string path = uki_system_path(slot);
    const std::string letter(1, slot.letter);
    ACTIVATE_ASSIGN(UniqueFd fd, sysroot.open(path, O_RDONLY));
    ACTIVATE_ASSIGN(FdGeometry geometry, fd_geometry(fd.get(), path));
    FdReader reader(fd.get(), geometry.size, path);
    ACTIVATE_ASSIGN(PeImage image, parse_pe(reader));
    ACTIVATE_ASSIGN(UkiSections sections, locate_uki_sections(image, path));

    Payload payload;
    // The kexec path boots exactly what a firmware boot of the slot would (docs/bundle-format.md
    // "Slot UKIs"): the .cmdline as written, which must name the slot.
    const std::string remedy =
        "install slot " + letter +
        " again: its UKI must name it on its own (an older activate left the placeholder in "
        "the UKI on the ESP and replaced it only when booting by kexec)";
    if (!sections.cmdline)
        return Error(
            ErrorKind::input,
            path + " has no .cmdline section, so it does not name slot " + letter + "; " + remedy);
    std::string raw(sections.cmdline->file_length(), '\0');
    ACTIVATE_TRY(reader.read_at(sections.cmdline->file_offset(),
                                {reinterpret_cast<uint8_t*>(raw.data()), raw.size()}));
    ACTIVATE_ASSIGN(payload.cmdline, finish_cmdline(raw, path));
    ACTIVATE_TRY(check_cmdline_names_slot(payload.cmdline, slot.letter, config, path, remedy));

    ACTIVATE_ASSIGN(SealedMemfd kernel,
                    copy_to_sealed_memfd(
                        fd.get(), {{sections.kernel.file_offset(), sections.kernel.file_length()}},
                        "slot-" + letter + "-kernel", path));
    log.debug("slot " + letter + " kernel: " + std::to_string(kernel.size) + " bytes via " +
              to_string(kernel.method));
    payload.kernel = std::move(kernel.fd);

    // UAPI UKI specification: the .ucode section is an initrd to be loaded before .initrd, so
    // early microcode comes first in the concatenated initramfs.
    std::vector<FileRange> initramfs;
    for (const auto& s : {sections.ucode, sections.initrd})
        if (s && s->file_length() > 0) initramfs.push_back({s->file_offset(), s->file_length()});
    if (!initramfs.empty()) {
        ACTIVATE_ASSIGN(
            SealedMemfd initrd,
            copy_to_sealed_memfd(fd.get(), initramfs, "slot-" + letter + "-initramfs", path));
        log.debug("slot " + letter + " initramfs: " + std::to_string(initrd.size) + " bytes via " +
                  to_string(initrd.method));
        payload.initramfs = std::move(initrd.fd);
    }

    payload.description = "slot " + letter + " UKI " + path;
    return payload;
}

}  // namespace activate::uki
