" aigents-lsp for Vim 8.2+/9: source from your vimrc. Pick ONE of the two blocks.

" --- vim-lsp (https://github.com/prabirshrestha/vim-lsp) --------------------------
" Completion: set omnifunc (i_CTRL-X_CTRL-O) or install asyncomplete-lsp.vim for a popup.
if exists('*lsp#register_server') || !empty(globpath(&runtimepath, 'autoload/lsp.vim'))
  augroup aigents_vim_lsp
    autocmd!
    autocmd User lsp_setup call lsp#register_server({
          \ 'name': 'aigents',
          \ 'cmd': {server_info -> ['aigents-lsp']},
          \ 'allowlist': ['python', 'javascript', 'typescript', 'go', 'rust', 'c', 'cpp'],
          \ })
    autocmd User lsp_buffer_enabled setlocal omnifunc=lsp#complete
  augroup END
  " Code actions: :LspCodeAction
  finish
endif

" --- ALE (vim-ale) ------------------------------------------------------------------
" Must run before ALE loads (so source this file early in your vimrc).
let g:ale_completion_enabled = 1
for s:ft in ['python', 'javascript', 'typescript', 'go', 'rust']
  call ale#linter#Define(s:ft, {
        \ 'name': 'aigents',
        \ 'lsp': 'stdio',
        \ 'executable': 'aigents-lsp',
        \ 'command': '%e',
        \ 'project_root': {buffer -> fnamemodify(bufname(buffer), ':p:h')},
        \ })
endfor
" ALE runs only the linters listed here for a filetype: keep yours and add 'aigents'.
let g:ale_linters = get(g:, 'ale_linters', {})
let g:ale_linters.python = get(g:ale_linters, 'python', []) + ['aigents']
" Code actions: :ALECodeAction (on a selection: :'<,'>ALECodeAction)
