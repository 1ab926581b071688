// `activate bundle keygen|create|verify|info`: key pairs, signed bundle creation, verification
// without installing, and the manifest of a bundle. Formats: docs/bundle-format.md. As in the
// rest of the CLI, stdout carries only the command's output (`info`); logs go to stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <activate/bundle/signed_writer.hpp>
#include <activate/bundle/source.hpp>
#include <activate/bundle/verifying_reader.hpp>
#include <activate/bundle_cli.hpp>
#include <activate/fd.hpp>
#include <boost/program_options.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace activate {

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace activate::bundle;

namespace {

struct Context {
    std::string program;  // "activate bundle"
    Logger logger;
    Log log{&logger, "bundle"};
};

Error usage(const Context& c, const std::string& message) {
    return Error(ErrorKind::usage, message + " (see '" + c.program + " --help')");
}

void print_help(const std::string& program) {
    std::cout
        << "Usage:\n"
        << "  " << program << " keygen -o PREFIX | --secret FILE --public FILE\n"
        << "  " << program
        << " create --key SECRET --compatible STR --version V -o OUT.zip [NAME=]FILE...\n"
        << "  " << program << " verify --keys DIR [--compatible STR] BUNDLE\n"
        << "  " << program << " info [--json] BUNDLE\n\n"
        << "keygen   writes an Ed25519 key pair: PREFIX.secret (mode 0600; keep it off the\n"
           "         devices) and PREFIX.pub (goes into the devices' trusted key directory,\n"
           "         the uki payload setting trusted_keys, default /etc/activate/keys).\n"
           "create   writes a signed bundle: manifest.pb and manifest.sig first, then each FILE\n"
           "         as member NAME (default: its file name), in the order given; for the uki\n"
           "         payload give the UKI(s) first, so devices check them before writing the\n"
           "         slot. -o - writes to stdout.\n"
           "verify   checks the signature against the *.pub keys in DIR, the compatible string\n"
           "         (when given) and the size and SHA-256 of every member. Installs nothing.\n"
           "info     prints the manifest (the signature is not checked; use verify).\n\n"
           "BUNDLE is a path or an http(s) URL. Format: docs/bundle-format.md.\n"
           "Exit codes: 0 ok, 1 internal error, 2 usage, 5 invalid input (damaged zip), 6 I/O,\n"
           "8 bundle rejected (signature, compatible string, digests).\n";
}

// Parses `args` (the words after the subcommand) against `desc`; positional words go to
// `positional`.
Status parse(const Context& c, const std::vector<std::string>& args,
             const po::options_description& desc, std::vector<std::string>* positional,
             po::variables_map* vm) {
    po::options_description all;
    all.add(desc);
    std::vector<std::string> rest;
    all.add_options()("positional", po::value(&rest)->composing());
    po::positional_options_description pos;
    pos.add("positional", -1);
    try {
        po::store(po::command_line_parser(args).options(all).positional(pos).run(), *vm);
        po::notify(*vm);
    } catch (const po::error& e) {
        return usage(c, e.what());
    }
    if (positional)
        *positional = rest;
    else if (!rest.empty())
        return usage(c, "unexpected argument '" + rest.front() + "'");
    return {};
}

// Creates `path` exclusively with `mode` and writes `data`, fsynced.
Status write_new_file(const std::string& path, const std::string& data, mode_t mode) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (!fd.valid()) {
        if (errno == EEXIST)
            return Error(ErrorKind::usage, path + " already exists; keys are never overwritten");
        return errno_error(ErrorKind::activation, "creating " + path);
    }
    // The umask may only take bits away; make the mode exact anyway.
    if (::fchmod(fd.get(), mode) != 0) return errno_error(ErrorKind::activation, "chmod " + path);
    if (!write_all(fd.get(), data)) return errno_error(ErrorKind::activation, "writing " + path);
    if (::fsync(fd.get()) != 0) return errno_error(ErrorKind::activation, "fsync " + path);
    return {};
}

Status keygen(Context& c, const std::vector<std::string>& args) {
    std::string prefix, secret_path, public_path;
    po::options_description desc("keygen options");
    desc.add_options()("output,o", po::value(&prefix), "write PREFIX.secret and PREFIX.pub")(
        "secret", po::value(&secret_path), "secret key file")("public", po::value(&public_path),
                                                              "public key file");
    po::variables_map vm;
    if (auto st = parse(c, args, desc, nullptr, &vm); !st.ok()) return st.error();
    if (!prefix.empty() && (!secret_path.empty() || !public_path.empty()))
        return usage(c, "give either -o PREFIX or --secret/--public, not both");
    if (!prefix.empty()) {
        secret_path = prefix + ".secret";
        public_path = prefix + ".pub";
    }
    if (secret_path.empty() || public_path.empty())
        return usage(c, "keygen needs -o PREFIX, or both --secret FILE and --public FILE");
    auto key = generate_secret_key();
    if (!key.ok()) return key.error();
    if (auto st = write_new_file(secret_path, format_secret_key(*key), 0600); !st.ok())
        return st.error();
    if (auto st = write_new_file(public_path, format_public_key(key->public_key()), 0644); !st.ok())
        return st.error();
    c.log.info("key " + key->public_key().fingerprint() + ": secret key in " + secret_path +
               " (mode 0600, keep it off the devices), public key in " + public_path +
               " (copy it into the devices' trusted key directory, default /etc/activate/keys)");
    return {};
}

// The output file of `create`: written under a temporary name and renamed when complete, so a
// failed run never leaves something that looks like a bundle.
class OutputFile {
  public:
    ~OutputFile() {
        if (!temp_.empty()) ::unlink(temp_.c_str());
    }
    Result<UniqueFd> open(const std::string& path) {
        temp_ = path + ".partial-" + std::to_string(::getpid());
        final_ = path;
        UniqueFd fd(::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
        if (!fd.valid()) {
            const int err = errno;
            temp_.clear();
            return errno_error(ErrorKind::activation, "creating " + path + ".partial-*", err);
        }
        return fd;
    }
    Status commit() {
        if (::rename(temp_.c_str(), final_.c_str()) != 0)
            return errno_error(ErrorKind::activation, "renaming " + temp_ + " to " + final_);
        temp_.clear();
        return {};
    }

  private:
    std::string temp_, final_;
};

// create's FILE arguments: NAME=FILE, or FILE as the member named by its file name.
std::vector<BundleInput> bundle_inputs(const std::vector<std::string>& files) {
    std::vector<BundleInput> inputs;
    for (const std::string& f : files) {
        const size_t eq = f.find('=');
        if (eq != std::string::npos)
            inputs.push_back({f.substr(0, eq), f.substr(eq + 1)});
        else
            inputs.push_back({fs::path(f).filename().string(), f});
    }
    return inputs;
}

// --key: the secret key file keygen wrote.
Result<SecretKey> read_secret_key(const std::string& key_path) {
    std::string key_text;
    {
        UniqueFd fd(::open(key_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd.valid()) return errno_error(ErrorKind::usage, "opening --key " + key_path);
        char buf[4097];
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) return errno_error(ErrorKind::activation, "reading " + key_path);
        key_text.assign(buf, size_t(n));
    }
    auto key = parse_secret_key(key_text, key_path);
    if (!key.ok()) return Error(ErrorKind::usage, key.error().message());
    return std::move(*key);
}

// -o: stdout ("-", never a terminal) or `file`, which the caller commits once the bundle is
// complete.
Result<std::unique_ptr<ByteSink>> open_output(const Context& c, const std::string& output,
                                              OutputFile& file) {
    if (output == "-") {
        if (::isatty(STDOUT_FILENO))
            return usage(c, "refusing to write a bundle to a terminal; redirect stdout");
        return fd_sink(UniqueFd(::dup(STDOUT_FILENO)), "<stdout>");
    }
    auto fd = file.open(output);
    if (!fd.ok()) return fd.error();
    return fd_sink(std::move(*fd), output);
}

Status create(Context& c, const std::vector<std::string>& args) {
    std::string key_path, compatible, version_text, output;
    bool progress = false;
    po::options_description desc("create options");
    desc.add_options()("key", po::value(&key_path), "secret key file (from keygen)")(
        "compatible", po::value(&compatible), "what the bundle is for (the devices' setting)")(
        "version", po::value(&version_text), "bundle version, dotted decimal (1.2.3)")(
        "output,o", po::value(&output), "the bundle to write, or - for stdout")(
        "progress", po::bool_switch(&progress), "report progress on stderr");
    std::vector<std::string> files;
    po::variables_map vm;
    if (auto st = parse(c, args, desc, &files, &vm); !st.ok()) return st.error();
    if (key_path.empty() || compatible.empty() || version_text.empty() || output.empty())
        return usage(c, "create needs --key, --compatible, --version and -o");
    if (files.empty()) return usage(c, "create needs at least one FILE");

    // Everything that can be refused is refused before hours of hashing.
    auto version = BundleVersion::parse(version_text);
    if (!version.ok()) return usage(c, "--version: " + version.error().message());
    if (compatible.size() > kCompatibleLimit ||
        !std::all_of(compatible.begin(), compatible.end(),
                     [](char ch) { return ch >= 0x20 && ch <= 0x7e; }))
        return usage(c, "--compatible must be printable ASCII of at most " +
                                    std::to_string(kCompatibleLimit) + " bytes");
    const std::vector<BundleInput> inputs = bundle_inputs(files);
    auto key = read_secret_key(key_path);
    if (!key.ok()) return key.error();

    OutputFile file;
    auto sink = open_output(c, output, file);
    if (!sink.ok()) return sink.error();
    ProgressOptions progress_options;
    progress_options.mode = progress ? ProgressMode::always : ProgressMode::automatic;
    Progress bar("hashing and writing " + output, std::nullopt, progress_options);
    auto manifest = write_signed_bundle(std::move(*sink), *key, compatible, *version, inputs, &bar);
    if (!manifest.ok()) return manifest.error();
    if (output != "-")
        if (auto st = file.commit(); !st.ok()) return st.error();
    c.log.info("wrote " + output + ": version " + version->text() + " for \"" + compatible +
               "\", " + std::to_string(manifest->members.size()) + " member(s), signed by key " +
               key->public_key().fingerprint());
    return {};
}

// `path` made absolute against the current directory. The throwing fs::absolute aborted the
// process when the current directory had been removed.
Result<std::string> absolute_path(const Context& c, const std::string& what,
                                  const std::string& path) {
    std::error_code ec;
    const fs::path absolute = fs::absolute(path, ec);
    if (ec)
        return usage(c, what + " " + path + ": the current directory is unknown (" + ec.message() +
                            "); give an absolute path");
    return absolute.lexically_normal().string();
}

Result<BundleReader> open_bundle(const Context& c, const std::string& where) {
    std::string location = where;
    if (where.rfind("http://", 0) != 0 && where.rfind("https://", 0) != 0) {
        ACTIVATE_ASSIGN(location, absolute_path(c, "BUNDLE", where));
    }
    SourceOptions options;
    options.logger = &c.logger;
    ACTIVATE_ASSIGN(auto source, open_source(Sysroot("/"), location, options));
    return BundleReader::open(std::move(source));
}

Status verify(Context& c, const std::vector<std::string>& args) {
    std::string keys_dir, compatible;
    po::options_description desc("verify options");
    desc.add_options()("keys", po::value(&keys_dir), "directory of trusted *.pub keys")(
        "compatible", po::value(&compatible), "also require this compatible string");
    std::vector<std::string> positional;
    po::variables_map vm;
    if (auto st = parse(c, args, desc, &positional, &vm); !st.ok()) return st.error();
    if (keys_dir.empty()) return usage(c, "verify needs --keys DIR");
    if (positional.size() != 1) return usage(c, "verify takes exactly one BUNDLE");
    TrustOptions trust;
    auto keys_origin = absolute_path(c, "--keys", keys_dir);
    if (!keys_origin.ok()) return keys_origin.error();
    trust.keys_origin = *keys_origin;
    auto keys = load_trusted_keys(Sysroot("/"), trust.keys_origin, &c.log);
    if (!keys.ok()) return keys.error();
    trust.keys = std::move(*keys);
    trust.compatible = compatible;
    trust.compatible_origin = "--compatible";
    trust.log = &c.log;
    auto reader = open_bundle(c, positional.front());
    if (!reader.ok()) return reader.error();
    const std::string name = reader->source().name();
    auto manifest = verify_bundle(std::move(*reader), trust);
    if (!manifest.ok()) return manifest.error();
    uint64_t bytes = 0;
    for (const ManifestMember& m : manifest->members) bytes += m.size;
    c.log.info(name + ": OK — signature, " + std::to_string(manifest->members.size()) +
               " member(s) (" + std::to_string(bytes) + " bytes) and their SHA-256 verified" +
               (compatible.empty() ? "; compatible string not checked (no --compatible)" : ""));
    return {};
}

// What `info` reads of a bundle: its first two members, never the images.
struct BundleHead {
    std::string name;  // the path or URL as given
    Manifest manifest;
    bool has_signature = false;
};

Result<BundleHead> read_bundle_head(Context& c, const std::string& bundle) {
    auto reader = open_bundle(c, bundle);
    if (!reader.ok()) return reader.error();
    const std::string name = reader->source().name();
    auto first = reader->next();
    if (!first.ok()) return first.error();
    if (!*first || (*first)->name != kManifestMember)
        return Error(ErrorKind::input,
                     name + " is not a signed bundle: its first member is not manifest.pb");
    std::string raw;
    std::vector<uint8_t> buf(64 << 10);
    while (true) {
        auto n = reader->read(buf);
        if (!n.ok()) return n.error();
        if (*n == 0) break;
        if (raw.size() + *n > kManifestLimit)
            return Error(ErrorKind::input, name + ": manifest.pb is too large");
        raw.append(reinterpret_cast<const char*>(buf.data()), *n);
    }
    auto second = reader->next();
    if (!second.ok()) return second.error();
    const bool has_signature = *second && (*second)->name == kSignatureMember;
    auto manifest = parse_manifest(
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw.data()), raw.size()));
    if (!manifest.ok()) return std::move(manifest).error().with_context(name);
    return BundleHead{name, std::move(*manifest), has_signature};
}

void print_info_json(const BundleHead& head, std::ostream& out) {
    const Manifest& manifest = head.manifest;
    // The bundle's name is a path or URL as given: any bytes. Invalid UTF-8 is replaced by
    // U+FFFD so that the output stays JSON (RFC 8259 section 8.1) whatever the name holds.
    nlohmann::ordered_json doc;
    doc["bundle"] = head.name;
    doc["format_version"] = manifest.format_version;
    doc["compatible"] = manifest.compatible;
    doc["version"] = manifest.version.text();
    doc["signing_key"] = manifest.signing_key.hex();
    doc["has_signature"] = head.has_signature;
    doc["signature_checked"] = false;
    doc["members"] = nlohmann::ordered_json::array();
    for (const ManifestMember& m : manifest.members)
        doc["members"].push_back({{"name", m.name},
                                  {"size", m.size},
                                  {"chunk_size", m.chunk_size},
                                  {"chunks", m.chunks.size()}});
    out << doc.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
}

void print_info_text(const BundleHead& head, std::ostream& out) {
    const Manifest& manifest = head.manifest;
    out << "bundle:         " << head.name << "\n"
        << "format version: " << manifest.format_version << "\n"
        << "compatible:     " << manifest.compatible << "\n"
        << "version:        " << manifest.version.text() << "\n"
        << "signing key:    " << manifest.signing_key.hex() << "\n"
        << "signature:      "
        << (head.has_signature ? "present, not checked (use verify --keys DIR)" : "MISSING") << "\n"
        << "members:\n";
    for (const ManifestMember& m : manifest.members)
        out << "  " << m.name << "  " << m.size << " bytes  " << m.chunks.size()
            << (m.chunks.size() == 1 ? " chunk" : " chunks") << " of " << m.chunk_size
            << " bytes, each with its SHA-256\n";
}

Status info(Context& c, const std::vector<std::string>& args) {
    bool json = false;
    po::options_description desc("info options");
    desc.add_options()("json", po::bool_switch(&json), "print JSON");
    std::vector<std::string> positional;
    po::variables_map vm;
    if (auto st = parse(c, args, desc, &positional, &vm); !st.ok()) return st.error();
    if (positional.size() != 1) return usage(c, "info takes exactly one BUNDLE");
    auto head = read_bundle_head(c, positional.front());
    if (!head.ok()) return head.error();
    std::ostringstream out;
    if (json)
        print_info_json(*head, out);
    else
        print_info_text(*head, out);
    std::cout << out.str();
    std::cout.flush();
    return {};
}

}  // namespace

Status run_bundle_cli(int argc, char** argv, const std::string& program) {
    Context c;
    c.program = program + " bundle";
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        if (argc < 2)
            return usage(c, "missing subcommand: keygen, create, verify or info");
        print_help(c.program);
        return {};
    }
    const std::string sub = argv[1];
    std::vector<std::string> args(argv + 2, argv + argc);
    for (const std::string& a : args)
        if (a == "--help" || a == "-h") {
            print_help(c.program);
            return {};
        }
    if (sub == "keygen") return keygen(c, args);
    if (sub == "create") return create(c, args);
    if (sub == "verify") return verify(c, args);
    if (sub == "info") return info(c, args);
    return usage(c, "unknown subcommand '" + sub + "' (keygen, create, verify or info)");
}

}  // namespace activate
