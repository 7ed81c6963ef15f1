"""Property-based concurrency test harness for chat servers: plan, clients, history, checker, report."""
