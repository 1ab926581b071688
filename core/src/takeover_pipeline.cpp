// The takeover pipeline and its stdio protocol: one TakeoverInit in, exactly one
// TakeoverResponse out, nothing else on stdout; the jump happens only after the response was
// written and stdout closed, and only when staging succeeded.
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <activate/agent_init.hpp>
#include <activate/engine.hpp>
#include <activate/fd.hpp>
#include <activate/takeover_protocol.hpp>
#include <chrono>

#include "net.pb.h"
#include "takeover.pb.h"

namespace activate {

Result<wire::TakeoverInit> parse_takeover_init(std::string_view bytes) {
    if (bytes.empty())
        return Error(ErrorKind::input, "stdin was empty: expected a serialized TakeoverInit");
    if (bytes.size() > kMaxTakeoverInitSize)
        return Error(ErrorKind::input, "TakeoverInit on stdin is larger than 1 MiB");
    wire::TakeoverInit init;
    if (!init.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        return Error(ErrorKind::input, "stdin is not a valid TakeoverInit protobuf (" +
                                           std::to_string(bytes.size()) + " bytes)");
    if (init.bmaas_endpoint().empty())
        return Error(ErrorKind::input, "TakeoverInit.bmaas_endpoint is empty");
    return init;
}

namespace {
// The message ends where the client closes stdin. `timeout` bounds the whole read, so a client
// that keeps stdin open (or trickles bytes) cannot hold the pipeline.
Result<wire::TakeoverInit> read_takeover_init(int fd, std::chrono::milliseconds timeout) {
    using Clock = std::chrono::steady_clock;
    const Clock::time_point deadline = Clock::now() + timeout;
    std::string bytes;
    char buf[1 << 14];
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        pollfd pfd{fd, POLLIN, 0};
        const int ready = left.count() > 0 ? ::poll(&pfd, 1, int(left.count())) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0)
            return errno_error(ErrorKind::input, "waiting for the TakeoverInit on stdin");
        if (ready == 0)
            return Error(ErrorKind::input,
                         "no complete TakeoverInit on stdin within " +
                             std::to_string(timeout.count()) + " ms (policy input_timeout; " +
                             std::to_string(bytes.size()) +
                             " bytes arrived): the client must send the message and close stdin");
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < 0) return errno_error(ErrorKind::input, "reading the TakeoverInit from stdin");
        if (n == 0) break;
        if (bytes.size() + static_cast<size_t>(n) > kMaxTakeoverInitSize)
            return Error(ErrorKind::input, "TakeoverInit on stdin is larger than 1 MiB");
        bytes.append(buf, static_cast<size_t>(n));
    }
    return parse_takeover_init(bytes);
}

// Writes the response and closes `fd`, keeping the descriptor number pointing at /dev/null so
// that nothing written later can land in the protocol stream.
Status respond(int fd, const wire::TakeoverResponse& response) {
    Status written;
    if (!write_all(fd, response.SerializeAsString()))
        written = errno_error(ErrorKind::activation, "writing the TakeoverResponse");
    int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd >= 0) {
        ::dup2(null_fd, fd);
        ::close(null_fd);
    } else {
        ::close(fd);
    }
    return written;
}
}  // namespace

Status Engine::run_takeover(int in_fd, int out_fd) {
    wire::TakeoverResponse response;
    // Answers the client; the error itself is logged once, by the caller that gets it back.
    auto fail = [&](Error error) -> Status {
        response.mutable_error()->set_message(error.message());
        Status written = respond(out_fd, response);
        if (!written.ok()) log_.error(written.error().message());
        return error;
    };

    // The message first: waiting for a client must not hold the lock, which would block
    // mark-good and updates meanwhile (issue 12 §3).
    log_.debug("waiting for the TakeoverInit on stdin (input_timeout " +
               std::to_string(policy_.input_timeout.count()) + " ms)");
    Result<wire::TakeoverInit> init = read_takeover_init(in_fd, policy_.input_timeout);
    if (!init.ok()) return fail(init.error());
    // Held until the detached second stage has jumped (see FileLock): a second takeover in the
    // meantime would replace the staged image under a client that already has its key.
    Result<FileLock> lock = take_lock();
    if (!lock.ok()) return fail(lock.error());
    log_.info("takeover requested for machine '" + init->machine_id() + "'");

    wire::AgentInit agent_init;
    *agent_init.mutable_takeover_init() = *init;
    wire::TakeoverSuccess* success = response.mutable_success();
    for (size_t i = 0; i < captures_.size(); ++i) {
        Result<CaptureResult> captured = captures_[i]->capture();
        if (!captured.ok())
            return fail(captured.error().with_context("capture " + policy_.captures[i].name));
        wire::Net net;
        if (!net.ParseFromString(captured->network_config))
            return fail(Error(ErrorKind::internal,
                              "capture " + policy_.captures[i].name + " returned an invalid Net"));
        agent_init.mutable_network_config()->MergeFrom(net);
        for (const std::string& w : captured->warnings) {
            log_.warning(policy_.captures[i].name + ": " + w);
            success->add_warning(w);
        }
    }

    Result<AgentKey> key = generate_agent_key();
    if (!key.ok()) return fail(key.error());
    agent_init.set_private_key(key->secret_key.data(), key->secret_key.size());

    PayloadRequest request;
    request.agent_init = agent_init.SerializeAsString();
    Result<Payload> payload = payload_->prepare(request);
    if (!payload.ok()) return fail(payload.error().with_context("preparing the payload"));
    Status staged = activation_->stage(&payload.value(), std::nullopt, boot_control_.get());
    if (!staged.ok()) return fail(staged.error().with_context("staging the payload"));
    log_.info("staged " + payload->description);

    *success->mutable_init_message() = *init;
    success->set_key(key->public_key.data(), key->public_key.size());
    // From here on a failure unloads the staged image: nobody will jump to it, or the client
    // never got its key.
    Status answered = respond(out_fd, response);
    if (!answered.ok())
        return undo_staging(answered.error().with_context("the client did not get its key"));

    if (policy_.mode == ActivationMode::none) {
        log_.info("activation_mode none: staged, not jumping");
        return {};
    }
    log_.info(std::string("jumping (") + to_string(policy_.mode) + ") in " +
              std::to_string(policy_.delay.count()) + " ms from a detached second stage");
    Status jumping = activation_->activate(policy_.delay, /*detached=*/true);
    if (!jumping.ok())
        return undo_staging(jumping.error().with_context(
            "the client was already told the takeover succeeded, but no jump will happen"));
    return jumping;
}

}  // namespace activate
