// A leader election from C++17: RAII handles over the C ABI, an asynchronous
// campaign completed through a std::promise, and a handoff between two candidates.
//
//   c++ -std=c++17 examples/cpp/election.cpp $(pkg-config --cflags --libs ballot) -o election-cpp
//   ./election-cpp [BACKEND_URL]     (default: $BALLOT_BACKEND, else the local backend)
#include <ballot.h>

#include <cstdlib>
#include <future>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

struct ClientFree {
    void operator()(ballot_client *c) const { ballot_client_free(c); }
};
struct ElectionFree {
    void operator()(ballot_election *e) const { ballot_election_free(e, nullptr); }
};
struct LeaderFree {
    void operator()(ballot_leader *l) const { ballot_leader_free(l); }
};
using Client = std::unique_ptr<ballot_client, ClientFree>;
using Election = std::unique_ptr<ballot_election, ElectionFree>;
using Leader = std::unique_ptr<ballot_leader, LeaderFree>;

// Turns a failed call into an exception carrying libballot's message.
void check(ballot_result r, ballot_error *err, const char *what) {
    if (r == BALLOT_RESULT_OK) return;
    std::string msg = std::string(what) + ": " + (err ? ballot_error_message(err) : ballot_result_str(r));
    ballot_error_free(err);
    throw std::runtime_error(msg);
}

Client connect(const std::string &url) {
    ballot_client *c = nullptr;
    ballot_error *err = nullptr;
    check(ballot_client_connect(url.c_str(), nullptr, &c, &err), err, "connect");
    return Client(c);
}

Election election(const Client &c, const char *name) {
    ballot_election *e = nullptr;
    ballot_error *err = nullptr;
    check(ballot_election_new(c.get(), name, &e, &err), err, "election");
    return Election(e);
}

std::string leader_of(const Election &e) {
    ballot_leader *l = nullptr;
    ballot_error *err = nullptr;
    check(ballot_election_leader(e.get(), &l, &err), err, "leader");
    Leader owned(l);
    const uint8_t *v = nullptr;
    size_t len = 0;
    ballot_leader_value(owned.get(), &v, &len);
    return std::string(reinterpret_cast<const char *>(v), len) + " (term " +
           std::to_string(ballot_leader_term(owned.get())) + ")";
}

// The completion callback runs once, on a libballot thread.
void on_done(void *user_data, ballot_result r, uint64_t term, const ballot_error *err) {
    auto *p = static_cast<std::promise<uint64_t> *>(user_data);
    if (r == BALLOT_RESULT_OK)
        p->set_value(term);
    else
        p->set_exception(std::make_exception_ptr(std::runtime_error(ballot_error_message(err))));
}

}  // namespace

int main(int argc, char **argv) {
    try {
        std::string url;
        if (argc > 1)
            url = argv[1];
        else if (const char *env = std::getenv("BALLOT_BACKEND"))
            url = env;
        else
            url = std::string("file://") + (std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/ballot";
        std::cout << "libballot " << ballot_version() << ", backend " << url << "\n";

        Client a = connect(url), b = connect(url);
        Election ea = election(a, "example/cpp"), eb = election(b, "example/cpp");

        uint64_t term_a = 0;
        ballot_error *err = nullptr;
        check(ballot_election_campaign(ea.get(), reinterpret_cast<const uint8_t *>("alpha"), 5, 10000, &term_a, &err),
              err, "campaign alpha");
        std::cout << "alpha leads with term " << term_a << "\n";

        std::promise<uint64_t> won;
        std::future<uint64_t> beta = won.get_future();
        check(ballot_election_campaign_async(eb.get(), reinterpret_cast<const uint8_t *>("beta"), 4, on_done, &won, &err),
              err, "campaign beta");
        std::cout << "leader now: " << leader_of(eb) << "\n";

        check(ballot_election_resign(ea.get(), &err), err, "resign alpha");
        uint64_t term_b = beta.get();
        std::cout << "beta took over with term " << term_b << "; leader now: " << leader_of(ea) << "\n";
        if (term_b <= term_a) throw std::runtime_error("the term did not increase");

        check(ballot_election_resign(eb.get(), &err), err, "resign beta");
        std::cout << "done\n";
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
