export {
  cosignKeyHint,
  KeyHintError,
  type PublicKeysByHint,
  parseTrustedRoot,
  publicGoodTrustedRoot,
  type TrustedRootAuthorityJSON,
  TrustedRootError,
  type TrustedRootJSON,
  type TrustedRootLogJSON,
  type TrustedRootValidity,
  trustMaterialFor,
} from './trusted-root.ts';
