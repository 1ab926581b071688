// A UKI made fit for its slot; see slot_uki.hpp.
#include <unistd.h>

#include <activate/fd.hpp>
#include <payload_uki/pe.hpp>
#include <payload_uki/random_reader.hpp>
#include <payload_uki/slot_layout.hpp>
#include <payload_uki/slot_uki.hpp>
#include <payload_uki/uki.hpp>

namespace activate::uki {
namespace {

Status write_all_at(int fd, const std::string& data, uint64_t offset, const std::string& name) {
    if (!pwrite_all(fd, data.data(), data.size(), offset))
        return errno_error(ErrorKind::activation, "patching the .cmdline of " + name);
    return {};
}

}  // namespace

Result<SlotUki> make_slot_uki(int fd, uint64_t size, char slot, bool patch,
                              const UkiSourceConfig& config, const std::string& name,
                              const Log& log) {
    const std::string letter(1, slot);
    FdReader reader(fd, size, name);
    ACTIVATE_ASSIGN(PeImage image, parse_pe(reader));
    ACTIVATE_ASSIGN(UkiSections sections, locate_uki_sections(image, name));
    const std::string remedy =
        "ship a UKI whose .cmdline names the slot it boots: one UKI per slot (bundle_uki: "
        "kernel_efi-{slot}.efi, each naming its slot, e.g. root=PARTLABEL=" +
        config.label(slot) + ")" +
        (config.cmdline_placeholder.empty()
             ? std::string()
             : " or, when it is not signed, one UKI holding the placeholder \"" +
                   config.cmdline_placeholder + "\" where the slot is named");
    if (!sections.cmdline)
        return Error(ErrorKind::input, name +
                                           " has no .cmdline section, so it does not name "
                                           "slot " +
                                           letter +
                                           " (systemd-stub would boot it "
                                           "with the boot entry's options, which Secure Boot "
                                           "ignores, and kexec with none); " +
                                           remedy);
    const PeSection& section = *sections.cmdline;
    std::string raw(section.file_length(), '\0');
    ACTIVATE_TRY(reader.read_at(section.file_offset(),
                                {reinterpret_cast<uint8_t*>(raw.data()), raw.size()}));

    SlotUki out;
    if (patch && !config.cmdline_placeholder.empty() &&
        raw.find(config.cmdline_placeholder) != std::string::npos) {
        // Authenticode covers the sections ("Windows Authenticode Portable Executable Signature
        // Format", calculating the PE image hash): any patched byte fails Secure Boot.
        if (image.has_signature())
            return Error(ErrorKind::input,
                         name + " carries an Authenticode signature (PE certificate table, " +
                             std::to_string(image.certificate_table.size) +
                             " bytes), so replacing cmdline_placeholder \"" +
                             config.cmdline_placeholder +
                             "\" in its .cmdline would break Secure Boot. Ship one signed UKI per "
                             "slot (bundle_uki: kernel_efi-{slot}.efi) whose .cmdline names its "
                             "slot");
        const std::string patched =
            replace_all(raw, config.cmdline_placeholder, config.replacement(slot));
        if (patched.size() != raw.size())
            return Error(ErrorKind::internal, "cmdline_replacement changed the .cmdline's length");
        // The optional header's CheckSum is left as it is: UEFI firmware does not check it (only
        // Windows requires it, for drivers), and Authenticode hashing skips it.
        ACTIVATE_TRY(write_all_at(fd, patched, section.file_offset(), name));
        raw = patched;
        out.patched = true;
        log.info(name + ": \"" + config.cmdline_placeholder + "\" replaced by \"" +
                 config.replacement(slot) + "\" in .cmdline");
    }
    ACTIVATE_ASSIGN(out.cmdline, finish_cmdline(raw, name));
    ACTIVATE_TRY(check_cmdline_names_slot(out.cmdline, slot, config, name, remedy));
    return out;
}

}  // namespace activate::uki
