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
" ALE's automatic popup asks only after a word and keeps the items that start with that word;
" an AI suggestion continues after the cursor, so ask for it: CTRL-Space (CTRL-@ in a terminal),
" then CTRL-N CTRL-Y to take it. `menuone`: the menu shows a single suggestion too.
if !hasmapto('<Plug>(ale_complete)', 'i')
  imap <C-Space> <Plug>(ale_complete)
  imap <C-@> <Plug>(ale_complete)
endif
set completeopt+=menuone
" Code actions: :ALECodeAction (on a selection: :'<,'>ALECodeAction)
