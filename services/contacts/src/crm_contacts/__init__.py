"""The contacts service: who each customer is, and everything that happened with them."""
