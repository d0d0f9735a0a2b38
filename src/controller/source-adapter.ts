/** The controller's Git source: the isomorphic-git adapter of src/source. */
export { createGitSource, createLocalSource } from '../source/git-source.ts';
