// See chunk_pipeline.hpp.
#include "chunk_pipeline.hpp"

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

namespace activate::bundle {

size_t default_verifier_count() {
    return std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
}

Result<uint64_t> run_chunk_pipeline(const ChunkStages& stages, size_t chunk_size,
                                    size_t verifiers) {
    const bool verifying = static_cast<bool>(stages.verify);
    if (!verifying) verifiers = 0;
    verifiers = std::max<size_t>(verifiers, verifying ? 1 : 0);
    const size_t depth = verifying ? verifiers + 2 : 3;
    std::vector<std::unique_ptr<uint8_t[]>> buffers;
    for (size_t i = 0; i < depth; ++i)
        buffers.push_back(std::make_unique_for_overwrite<uint8_t[]>(chunk_size));

    // Everything below is guarded by `mutex`; a chunk's bytes are handed over through it too:
    // the reader fills buffer i % depth before it counts chunk i as filled, and fills it again
    // only once the sink is done with chunk i, which it takes only after chunk i was verified.
    enum class State { verifying, verified, failed };
    struct Slot {
        size_t size = 0;
        State state = State::verifying;
        std::optional<Error> error;
    };
    std::mutex mutex;
    std::condition_variable changed;
    std::vector<Slot> slots(depth);
    uint64_t filled = 0, next_to_verify = 0, sunk = 0;
    std::optional<uint64_t> last;
    std::optional<Error> fill_error;  // the reader stopped at chunk `filled`
    bool stop = false;

    auto read_chunks = [&] {
        for (uint64_t i = 0;; ++i) {
            {
                std::unique_lock lock(mutex);
                changed.wait(lock, [&] { return stop || i < sunk + depth; });
                if (stop) return;
            }
            Result<ChunkStages::Filled> got =
                stages.fill(std::span<uint8_t>(buffers[i % depth].get(), chunk_size));
            std::lock_guard lock(mutex);
            if (!got.ok()) {
                fill_error = std::move(got).error();
            } else {
                slots[i % depth] = {got->size, verifying ? State::verifying : State::verified, {}};
                if (got->end) last = i;
                filled = i + 1;
            }
            changed.notify_all();
            if (fill_error || last) return;
        }
    };
    // Each verifier takes the oldest chunk nobody took yet; chunks finish in any order.
    auto verify_chunks = [&] {
        while (true) {
            uint64_t i = 0;
            size_t size = 0;
            {
                std::unique_lock lock(mutex);
                changed.wait(lock, [&] {
                    return stop || next_to_verify < filled || fill_error ||
                           (last && next_to_verify > *last);
                });
                if (stop || next_to_verify >= filled) return;
                i = next_to_verify++;
                size = slots[i % depth].size;
            }
            Status verified =
                stages.verify(i, std::span<const uint8_t>(buffers[i % depth].get(), size));
            std::lock_guard lock(mutex);
            Slot& slot = slots[i % depth];
            if (verified.ok()) {
                slot.state = State::verified;
            } else {
                slot.state = State::failed;
                slot.error = std::move(verified).error();
            }
            changed.notify_all();
        }
    };

    std::thread reader;
    std::vector<std::thread> pool;
    auto join_threads = [&] {
        if (reader.joinable()) reader.join();
        for (std::thread& t : pool)
            if (t.joinable()) t.join();
    };
    auto stop_and_join = [&] {
        {
            std::lock_guard lock(mutex);
            stop = true;
        }
        changed.notify_all();
        join_threads();
    };
    // Declared after everything the threads use, so that no return path frees it under them.
    struct Joiner {
        decltype(stop_and_join)& run;
        ~Joiner() { run(); }
    } joiner{stop_and_join};
    try {
        reader = std::thread(read_chunks);
        for (size_t i = 0; i < verifiers; ++i) pool.emplace_back(verify_chunks);
    } catch (const std::system_error& e) {
        return Error(ErrorKind::internal,
                     std::string("cannot start a thread to copy with: ") + e.code().message());
    }

    uint64_t total = 0;
    for (uint64_t i = 0;; ++i) {
        size_t size = 0;
        bool is_last = false;
        {
            std::unique_lock lock(mutex);
            changed.wait(lock, [&] {
                return (filled > i && slots[i % depth].state != State::verifying) ||
                       (filled <= i && fill_error);
            });
            if (filled <= i) {
                Error e = std::move(*fill_error);
                lock.unlock();
                return e;
            }
            Slot& slot = slots[i % depth];
            if (slot.state == State::failed) {
                Error e = std::move(*slot.error);
                lock.unlock();
                return e;
            }
            size = slot.size;
            is_last = last == i;
        }
        const std::span<const uint8_t> chunk(buffers[i % depth].get(), size);
        if (is_last) {
            // Every thread ends by itself after the last chunk; once joined, what they
            // computed is the caller's to check.
            join_threads();
            ACTIVATE_TRY(stages.check());
            if (size > 0) ACTIVATE_TRY(stages.sink(chunk));
            return total + size;
        }
        if (size > 0) ACTIVATE_TRY(stages.sink(chunk));
        total += size;
        {
            std::lock_guard lock(mutex);
            sunk = i + 1;
        }
        changed.notify_all();
    }
}

}  // namespace activate::bundle
