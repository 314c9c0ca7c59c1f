pub struct TokenCache;
